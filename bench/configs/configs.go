// Package configs holds the nginx and Varnish configurations the benchmark runs
// its peers with. They are text/template files filled in at run time with the
// ports and the temporary directory; see Params.
package configs

import "embed"

// FS holds nginx.conf.tmpl and varnish.vcl.tmpl.
//
//go:embed *.tmpl
var FS embed.FS

// Params are the values the templates refer to.
type Params struct {
	Dir          string // private temporary directory for logs, cache and temp files
	Port         int    // loopback port the peer listens on
	UpstreamPort int    // loopback port of bench/upstream
	Workers      int    // nginx worker_processes
	RunAsRoot    bool   // nginx master runs as root: keep workers as root too, so they can write Dir
}
