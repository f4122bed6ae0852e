package main

import (
	"context"
	"errors"
)

// describe turns an error into the one line a user sees. Library errors carry
// context already; this only rewrites the ones a user needs said plainly.
func describe(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out: " + err.Error()
	case errors.Is(err, context.Canceled):
		return "interrupted"
	}
	return err.Error()
}
