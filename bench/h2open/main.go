// Command h2open measures how long one client takes to open n WebSockets
// to a wsforge server over one HTTP/2 connection (RFC 8441 extended
// CONNECT streams) and as n HTTP/1.1 upgrades, each on a connection of its
// own, over TLS and in clear text. The client is Node's (the script
// interop/testdata/h2open.js; Go's http.Transport cannot send extended
// CONNECT), the same process for both ways; the server is one
// httptest.Server per mode whose handler upgrades with a zero Upgrader and
// reads until the client goes.
//
//	cd bench && go run ./h2open -n 100 -runs 7
//
// It needs node on PATH, and restarts itself with GODEBUG=http2xconnect=1,
// which Go's HTTP/2 server reads at start-up.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/wsforge/websocket"
)

func main() {
	n := flag.Int("n", 100, "WebSockets opened at once per run")
	runs := flag.Int("runs", 7, "runs per way; the median is reported")
	script := flag.String("script", filepath.Join("..", "interop", "testdata", "h2open.js"), "the Node client")
	flag.Parse()
	if !strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") {
		exe, err := os.Executable()
		if err != nil {
			log.Fatal(err)
		}
		env := append(os.Environ(), "GODEBUG="+strings.TrimPrefix(os.Getenv("GODEBUG")+",http2xconnect=1", ","))
		log.Fatal(syscall.Exec(exe, os.Args, env))
	}

	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	})
	fmt.Printf("| mode | HTTP/2, one connection (ms) | HTTP/1.1, %d connections (ms) | ratio |\n| --- | ---: | ---: | ---: |\n", *n)
	for _, mode := range []string{"TLS", "clear text"} {
		srv := httptest.NewUnstartedServer(echo)
		if mode == "TLS" {
			srv.EnableHTTP2 = true
			srv.StartTLS()
		} else {
			var p http.Protocols
			p.SetHTTP1(true)
			p.SetUnencryptedHTTP2(true)
			srv.Config.Protocols = &p
			srv.Start()
		}
		out, err := exec.Command("node", *script, srv.URL, "/", fmt.Sprint(*n), fmt.Sprint(*runs)).Output()
		srv.Close()
		if err != nil {
			log.Fatalf("%s: node %s: %v", mode, *script, err)
		}
		var res struct{ H2, H1 []float64 }
		if err := json.Unmarshal(out, &res); err != nil {
			log.Fatalf("%s: %v: %s", mode, err, out)
		}
		h2, h1 := median(res.H2), median(res.H1)
		fmt.Printf("| %s | %.1f | %.1f | %.2f |\n", mode, h2, h1, h2/h1)
	}
}

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}
