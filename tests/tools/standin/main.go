// The stand-in program of airgap's real-node tests: one small static binary carried under every
// image name a bundle names, so that a pod on a real kubelet starts, listens and answers where its
// manifests say the real image would. What it serves is baked into each image's config by the test
// (testkit::standin), derived from the rendered manifests:
//
//	STANDIN_SERVE  JSON {"<port>": ["/probe/path", ...], ...}: listen on each port; answer 200 on
//	               the listed paths and 404 on any other (a tcpSocket probe only needs the port).
//	               Absent: the image is only run to completion (Jobs, init containers): exit 0.
//	STANDIN_TLS    JSON [port, ...]: of those ports, the ones whose probes say HTTPS: served with a
//	               certificate made at start (the kubelet does not verify it).
//	STANDIN_EXIT   JSON [["arg", ...], ...]: invocations (the arguments after the program's name, as
//	               the pod spec writes them) that are run to completion although the image also
//	               serves elsewhere, such as an init container of a serving image. "$(VAR)" in
//	               a pattern matches any one argument (the kubelet expands it).
//
// Run as anything but PID 1 of its container it is an exec probe or a lifecycle hook calling one
// of the commands the image carries (the test puts this binary at each such path): it exits 0.
//
// As Istio's sidecar it also does what pilot-agent does for the probes Istio rewrote: with
// ISTIO_KUBE_APP_PROBERS set (the injector sets it on istio-proxy), port 15020 answers
// /app-health/<container>/<probe> by making the original probe against the app on localhost.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if os.Getpid() != 1 {
		return
	}
	serve, err := servePorts(os.Getenv("STANDIN_SERVE"))
	if err != nil {
		fail(err)
	}
	if serve == nil || runToCompletion(os.Getenv("STANDIN_EXIT"), os.Args[1:]) {
		fmt.Printf("airgap stand-in %s: run to completion\n", filepath.Base(os.Args[0]))
		return
	}
	var secure []int
	if text := os.Getenv("STANDIN_TLS"); text != "" {
		if err := json.Unmarshal([]byte(text), &secure); err != nil {
			fail(fmt.Errorf("STANDIN_TLS %q: %v", text, err))
		}
	}
	for port, paths := range serve {
		go listen(port, answer(paths), contains(secure, port))
	}
	if probers := os.Getenv("ISTIO_KUBE_APP_PROBERS"); probers != "" {
		handler, err := appProbes(probers)
		if err != nil {
			fail(err)
		}
		go listen(15020, handler, false)
	}
	fmt.Printf("airgap stand-in %s: serving %v\n", filepath.Base(os.Args[0]), serve)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "airgap stand-in: %v\n", err)
	os.Exit(2)
}

func servePorts(text string) (map[int][]string, error) {
	if text == "" {
		return nil, nil
	}
	var raw map[string][]string
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, fmt.Errorf("STANDIN_SERVE %q: %v", text, err)
	}
	ports := map[int][]string{}
	for p, paths := range raw {
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("STANDIN_SERVE: %q is not a port", p)
		}
		ports[port] = paths
	}
	return ports, nil
}

var variable = regexp.MustCompile(`^\$\([A-Za-z_][A-Za-z0-9_]*\)$`)

func runToCompletion(text string, args []string) bool {
	if text == "" {
		return false
	}
	var patterns [][]string
	if err := json.Unmarshal([]byte(text), &patterns); err != nil {
		fail(fmt.Errorf("STANDIN_EXIT %q: %v", text, err))
	}
	for _, p := range patterns {
		if len(p) != len(args) {
			continue
		}
		same := true
		for i := range p {
			if p[i] != args[i] && !variable.MatchString(p[i]) {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

func answer(paths []string) http.Handler {
	known := map[string]bool{}
	for _, p := range paths {
		known[p] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !known[r.URL.Path] {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"UP"}`)
	})
}

func contains(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func listen(port int, h http.Handler, secure bool) {
	server := &http.Server{Addr: fmt.Sprintf(":%d", port), Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if !secure {
		fail(server.ListenAndServe())
	}
	cert, err := selfSigned()
	if err != nil {
		fail(err)
	}
	server.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	fail(server.ListenAndServeTLS("", ""))
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	template := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// One original probe, as Istio's injector writes it into ISTIO_KUBE_APP_PROBERS.
type prober struct {
	HTTPGet *struct {
		Path   string `json:"path"`
		Port   int    `json:"port"`
		Scheme string `json:"scheme"`
	} `json:"httpGet"`
	TCPSocket *struct {
		Port int `json:"port"`
	} `json:"tcpSocket"`
	TimeoutSeconds int `json:"timeoutSeconds"`
}

func appProbes(text string) (http.Handler, error) {
	var probers map[string]prober
	if err := json.Unmarshal([]byte(text), &probers); err != nil {
		return nil, fmt.Errorf("ISTIO_KUBE_APP_PROBERS %q: %v", text, err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := probers[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
		var err error
		switch {
		case p.HTTPGet != nil:
			var resp *http.Response
			client := http.Client{Timeout: timeout}
			client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
			scheme := "http"
			if p.HTTPGet.Scheme == "HTTPS" {
				scheme = "https"
			}
			resp, err = client.Get(fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, p.HTTPGet.Port, p.HTTPGet.Path))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode >= 400 {
					err = fmt.Errorf("HTTP %d", resp.StatusCode)
				}
			}
		case p.TCPSocket != nil:
			var c net.Conn
			c, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p.TCPSocket.Port), timeout)
			if err == nil {
				c.Close()
			}
		default:
			err = fmt.Errorf("a probe that is neither httpGet nor tcpSocket")
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}), nil
}
