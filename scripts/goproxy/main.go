// omk-goproxy: a CetusGuard-like Docker socket proxy for the omk-backup test suite.
//
// It forwards the way CetusGuard (github.com/hectorm/cetusguard) does, written from its
// documented behaviour: a plain net/http server whose handler checks METHOD + path
// against an allow-list, then forwards the request with net/http's Transport.RoundTrip
// to the daemon's unix socket. A 101 (upgraded exec/attach) answer is hijacked and copied
// both ways; any other answer has its headers copied and its body copied with io.Copy,
// flushing after every write. The request is forwarded with the client request's
// context, so when the client side goes away Go closes the backend connection and the
// copy fails with "use of closed network connection" — the behaviour under test.
//
// Rules are the same as tests/proxy/haproxy.cfg (the Tecnativa-style proxy of the suite).
//
//	omk-goproxy -listen 127.0.0.1:2377 -socket /var/run/docker.sock
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

type rule struct {
	methods map[string]bool
	re      *regexp.Regexp
}

const v = `^(/v1\.[0-9]+)?`
const id = `[a-zA-Z0-9][a-zA-Z0-9_.-]*`

func mk(methods string, pattern string) rule {
	m := map[string]bool{}
	for _, x := range strings.Split(methods, ",") {
		m[x] = true
	}
	return rule{methods: m, re: regexp.MustCompile(v + pattern + `$`)}
}

// The allow-list of tests/proxy/haproxy.cfg.
var rules = []rule{
	mk("GET,HEAD", `/_ping`),
	mk("GET", `/version`),
	mk("GET", `/containers/json`),
	mk("GET", `/containers/`+id+`/json`),
	mk("GET", `/images/[a-zA-Z0-9][a-zA-Z0-9_.:@/-]*/json`),
	mk("POST", `/containers/`+id+`/(pause|unpause|stop|start|kill)`),
	mk("POST", `/containers/`+id+`/exec`),
	mk("POST", `/exec/[a-zA-Z0-9]+/start`),
	mk("GET", `/exec/[a-zA-Z0-9]+/json`),
	mk("POST", `/containers/create`),
	mk("DELETE", `/containers/`+id),
	mk("PUT", `/containers/omk-restore-[a-zA-Z0-9_.-]+/archive`),
}

func allowed(req *http.Request) bool {
	p := req.URL.Path
	if strings.Contains(p, "/.") || strings.Contains(p, `\`) {
		return false
	}
	for _, r := range rules {
		if r.methods[req.Method] && r.re.MatchString(p) {
			return true
		}
	}
	return false
}

type proxy struct {
	transport *http.Transport
}

// flushWriter flushes after every write, as CetusGuard's response writer does.
type flushWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func (fw flushWriter) Write(b []byte) (int, error) {
	n, err := fw.w.Write(b)
	fw.f.Flush()
	return n, err
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if !allowed(req) {
		log.Printf("denied request: %s %s", req.Method, req.URL.Path)
		w.WriteHeader(http.StatusForbidden)
		return
	}
	start := time.Now()
	if err := p.forward(w, req); err != nil {
		// Unlike CetusGuard, name the request, when it started and whether the client
		// side had gone away (the request context): that is what makes this log useful.
		log.Printf("%s %s (started %s ago, client context: %v): %v", req.Method, req.URL.Path,
			time.Since(start).Round(time.Millisecond), req.Context().Err(), err)
	}
}

func (p *proxy) forward(w http.ResponseWriter, req *http.Request) error {
	// Not in CetusGuard: note when the Transport's write of the request fails (it then
	// closes the backend connection), so the log says why a stream was cut.
	var mu sync.Mutex
	var wrote error
	trace := &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
		mu.Lock()
		wrote = i.Err
		mu.Unlock()
	}}
	out := req.Clone(httptrace.WithClientTrace(req.Context(), trace))
	out.URL.Scheme = "http"
	out.URL.Host = "docker"
	out.RequestURI = ""
	res, err := p.transport.RoundTrip(out)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		if errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) {
			return nil
		}
		return errors.New("error forwarding request: " + err.Error())
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusSwitchingProtocols {
		return hijack(w, res)
	}
	for k, vv := range res.Header {
		for _, x := range vv {
			w.Header().Add(k, x)
		}
	}
	f, _ := w.(http.Flusher)
	w.WriteHeader(res.StatusCode)
	f.Flush()
	if res.StatusCode < 200 || res.StatusCode == 204 || res.StatusCode == 304 {
		return nil
	}
	_, err = io.Copy(flushWriter{w, f}, res.Body)
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	mu.Lock()
	defer mu.Unlock()
	if wrote != nil {
		return errors.New("error copying response body: " + err.Error() + " (the Transport's write of the request had failed: " + wrote.Error() + ")")
	}
	return errors.New("error copying response body: " + err.Error())
}

// hijack passes an upgraded connection (exec/attach with Upgrade: tcp) both ways.
func hijack(w http.ResponseWriter, res *http.Response) error {
	up, ok := res.Body.(io.ReadWriteCloser)
	if !ok {
		w.WriteHeader(http.StatusInternalServerError)
		return errors.New("upgraded body is not writable")
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		w.WriteHeader(http.StatusInternalServerError)
		return errors.New("cannot hijack the client connection")
	}
	down, rw, err := hj.Hijack()
	if err != nil {
		return errors.New("error hijacking connection: " + err.Error())
	}
	defer down.Close()
	rw.WriteString(res.Proto + " " + res.Status + "\r\n")
	res.Header.Write(rw)
	rw.WriteString("\r\n")
	if err := rw.Flush(); err != nil {
		return errors.New("error writing the upgrade answer: " + err.Error())
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(up, rw) }()
	go func() { defer wg.Done(); io.Copy(down, up); down.Close() }()
	wg.Wait()
	return nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:2377", "address to listen on")
	socket := flag.String("socket", "/var/run/docker.sock", "the Docker daemon's unix socket")
	flag.Parse()
	log.SetOutput(os.Stderr)
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 90 * time.Second}
	p := &proxy{transport: &http.Transport{
		MaxIdleConns:        10,
		MaxIdleConnsPerHost: 10,
		IdleConnTimeout:     90 * time.Second,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", *socket)
		},
	}}
	srv := &http.Server{
		Addr:              *listen,
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       90 * time.Second,
	}
	log.Printf("omk-goproxy: serve on %s, backend unix:%s", *listen, *socket)
	log.Fatal(srv.ListenAndServe())
}
