package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunExitCodes(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		code     int
		inStderr string
		inStdout string
	}{
		{"bad flag value", []string{"-expire-after", "soon"}, 2, "-expire-after", ""},
		{"unknown flag", []string{"-nope"}, 2, "-nope", ""},
		{"bad upstream", []string{"-upstream", "x"}, 2, "-upstream", ""},
		{"bad key expression", []string{"-config", writeFile(t, "cel.yaml", "upstreams:\n  api:\n    url: http://x\n    key: 'request.url.path + nope'\n")}, 2, "cel.yaml:4: upstreams.api.key: bad expression at 1:20: undeclared reference to 'nope'", ""},
		{"help", []string{"-h"}, 0, "", "-listen"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tc.args, func(string) string { return "" }, &out, &errOut)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d (stderr %q)", code, tc.code, errOut.String())
			}
			if !strings.Contains(errOut.String(), tc.inStderr) || !strings.Contains(out.String(), tc.inStdout) {
				t.Fatalf("stdout %q / stderr %q: want %q / %q in them", out.String(), errOut.String(), tc.inStdout, tc.inStderr)
			}
		})
	}
}
