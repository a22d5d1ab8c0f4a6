package cluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// daemon is one component process of the cluster, started inside the
// holder's network and mount namespaces and reaped by this process.
type daemon struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// start runs bin with args inside the holder's namespaces, in a session of
// its own (a Ctrl-C in the terminal reaches the test, which tears down in
// order, and not the daemons), logging to <dir>/logs/<name>.log.
func (c *Cluster) start(name string, bin string, args ...string) (*daemon, error) {
	d := &daemon{name: name, log: filepath.Join(c.dir, "logs", name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	d.cmd = c.inside(bin, args...)
	d.cmd.Stdout, d.cmd.Stderr = f, f
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	c.daemons = append(c.daemons, d)
	return d, nil
}

// inside returns a command that runs bin inside the holder's network and
// mount namespaces (nsenter execs it: it stays this process's child).
func (c *Cluster) inside(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.holder.cmd.Process.Pid), "-m", "-n", "--", bin}, args...)...)
	cmd.Env = c.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd
}

func (c *Cluster) env() []string {
	return []string{
		"PATH=" + c.bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + filepath.Join(c.dir, "home"),
	}
}

// run runs bin inside the namespaces to completion.
func (c *Cluster) run(bin string, args ...string) ([]byte, error) {
	cmd := c.inside(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %v: %w\n%s", filepath.Base(bin), args, err, out.Bytes())
	}
	return out.Bytes(), nil
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// failure describes how d ended, with the tail of its log.
func (d *daemon) failure() error {
	return fmt.Errorf("%s exited (%w); the end of %s:\n%s", d.name, d.err, d.log, tail(d.log, 30))
}

// stop sends sig, waits up to grace for the exit, then kills.
func (d *daemon) stop(sig syscall.Signal, grace time.Duration) {
	if d.exited() {
		return
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(grace):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// tail returns the last n lines of a file.
func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Args are the command line a daemon of the cluster was started with (nil
// if none of that name runs).
func (c *Cluster) Args(name string) []string {
	for _, d := range c.daemons {
		if d.name == name {
			return d.cmd.Args
		}
	}
	return nil
}
