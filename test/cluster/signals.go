package cluster

import (
	"os"
	"os/signal"
)

// stopSignals undoes Start's signal.Notify.
func stopSignals(ch chan os.Signal) {
	signal.Stop(ch)
	close(ch)
}
