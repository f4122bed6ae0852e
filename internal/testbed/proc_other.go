//go:build !linux

package testbed

import "os/exec"

// setProcAttr has nothing to set outside Linux (no Pdeathsig).
func setProcAttr(cmd *exec.Cmd) {}
