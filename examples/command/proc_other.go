//go:build !unix

package main

import (
	"os"
	"os/exec"
	"syscall"
)

// Without Unix signals there is nothing gentler than killing the program
// once closing its input has not ended it.
var endSignals = []syscall.Signal{syscall.SIGKILL}

func ownProcessGroup(*exec.Cmd) {}

func signalGroup(cmd *exec.Cmd, _ syscall.Signal) error {
	return cmd.Process.Signal(os.Kill)
}
