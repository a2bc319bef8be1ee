//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// endSignals are sent in turn to a program that outlives its page.
var endSignals = []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL}

// ownProcessGroup puts the program in a process group of its own, so that
// the signals that end it also reach whatever it started (a shell's
// children), and so that a Ctrl-C in the server's terminal, which goes to
// the terminal's foreground group, leaves the ending to the server.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	return syscall.Kill(-cmd.Process.Pid, sig)
}
