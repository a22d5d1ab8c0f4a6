package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
)

// proxy forwards connections from a listener on the host's loopback to an
// address inside the cluster's namespace, so that the tests, helm, kubectl
// and the in-process cert-manager reach kube-apiserver (which listens only
// inside it) with ordinary kubeconfigs.
type proxy struct {
	ln     net.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startProxy(ns *netns, target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &proxy{ln: ln, cancel: cancel}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(ctx, ns, c, target)
			}()
		}
	}()
	return p, nil
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) forward(ctx context.Context, ns *netns, in net.Conn, target string) {
	defer func() { _ = in.Close() }()
	out, err := ns.dial(ctx, "tcp", target)
	if err != nil {
		return
	}
	defer func() { _ = out.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = in.Close(); _ = out.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
}

// close stops accepting, cuts open connections and waits for them.
func (p *proxy) close() error {
	err := p.ln.Close()
	p.cancel()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
