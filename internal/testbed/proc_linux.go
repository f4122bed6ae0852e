package testbed

import (
	"os/exec"
	"syscall"
)

// setProcAttr asks the kernel to SIGTERM prosody if the thread that started
// it dies (the test binary crashed or was killed), so no server outlives its
// test.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
