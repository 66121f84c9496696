package main

import (
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	const out = `Running 5s test @ http://127.0.0.1:9000/bytes/1k
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.01ms  412.33us  12.10ms   80.12%
    Req/Sec    31.95k     1.20k   35.00k    70.00%
  Latency Distribution
     50%  880.00us
     75%    1.10ms
     90%    1.40ms
     99%    2.50ms
  318000 requests in 5.00s, 360.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 12
Requests/sec:  63600.50
Transfer/sec:     72.02MB
`
	got, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{Requests: 318000, ReqPerSec: 63600.5, P50: 880 * time.Microsecond,
		P99: 2500 * time.Microsecond, Non2xx: 12, SockErrs: 3}
	if got != want {
		t.Fatalf("parseWrk = %+v, want %+v", got, want)
	}

	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Fatal("parseWrk of a failed run: want an error")
	}
}
