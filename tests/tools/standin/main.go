// The stand-in program of airgap's real-node tests: one small static binary carried under every
// image name a bundle names, so that a pod on a real kubelet starts, listens and answers where its
// manifests say the real image would. What it does is baked into each image's config by the test
// (testkit::standin), derived from the rendered manifests, per invocation: {"args": [...],
// "env": {"NAME": "value"}}, the arguments after the program's name as the pod spec writes them,
// and the variables that tell apart containers of one image with the same arguments (unset is
// ""); "$(VAR)" in a pattern stands for whatever the kubelet expands it to.
//
//	STANDIN_SERVE  JSON [{"args": [...], "env": {...}, "ports": {"<port>": ["/probe/path", ...]},
//	               "tls": [port, ...], "webhooks": {"<port>": "/cert/dir"}}, ...]: the services this
//	               image runs as. The first whose args match is run: it listens on each port and
//	               answers 200 on the listed paths, 404 on any other (a tcpSocket probe only needs
//	               the port). A port in tls is served with a certificate made at start (the kubelet
//	               does not verify it). A port in webhooks is an admission webhook's: served with
//	               the certificate kube-webhook-certgen wrote in that directory (cert, key), which
//	               the API server verifies, and any POST of an AdmissionReview is allowed.
//	STANDIN_EXIT   JSON [{"args": [...], "env": {...}}, ...]: invocations that run to completion
//	               (Jobs, init containers): exit 0.
//	STANDIN_CERTGEN  set: the image is kube-webhook-certgen, and its `create` and `patch`
//	               invocations do what that tool does (certgen.go).
//	STANDIN_HOST_PID  set: a pod that shares the host's process namespace runs it, where it is
//	               not PID 1 and is always the service (the test derives no exec probe for it).
//
// An invocation that matches nothing fails, naming its arguments: the stand-in does only what the
// manifests were found to ask. Run as the interpreter of a script mounted over the command (the
// test puts the program at the path of the script's "#!" line), the script's path is not counted.
//
// Run as anything but PID 1 of its container (but under STANDIN_HOST_PID) it is an exec probe or
// a lifecycle hook calling one of the commands the image carries (the test puts this binary at
// each such path): it exits 0.
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
	"strings"
	"syscall"
	"time"
)

// How a container runs the program (see above).
type invocation struct {
	Args []string          `json:"args"`
	Env  map[string]string `json:"env"`
}

// One service an image runs as (see STANDIN_SERVE).
type service struct {
	invocation
	Ports    map[string][]string `json:"ports"`
	TLS      []int               `json:"tls"`
	Webhooks map[string]string   `json:"webhooks"`
}

func main() {
	if os.Getpid() != 1 && os.Getenv("STANDIN_HOST_PID") == "" {
		return
	}
	args := os.Args[1:]
	script := withoutScript(args)
	name := filepath.Base(os.Args[0])
	if os.Getenv("STANDIN_CERTGEN") != "" && len(args) > 0 && (args[0] == "create" || args[0] == "patch") {
		if err := certgen(args); err != nil {
			fail(fmt.Errorf("kube-webhook-certgen %v: %v", args, err))
		}
		fmt.Printf("airgap stand-in %s: kube-webhook-certgen %s done\n", name, args[0])
		return
	}
	var exits []invocation
	if err := decode("STANDIN_EXIT", &exits); err != nil {
		fail(err)
	}
	for _, e := range exits {
		if e.matches(args) || e.matches(script) {
			fmt.Printf("airgap stand-in %s: run to completion\n", name)
			return
		}
	}
	var services []service
	if err := decode("STANDIN_SERVE", &services); err != nil {
		fail(err)
	}
	for _, s := range services {
		if s.matches(args) || s.matches(script) {
			run(name, s)
			return
		}
	}
	fail(fmt.Errorf("no invocation the manifests make of this image has the arguments %q (and variables %q)", args, os.Environ()))
}

// The arguments as the pod spec writes them when its command is a script mounted over the image's
// file (a ConfigMap's, with its own "#!" line): the kernel runs the script's interpreter, which the
// test makes this program, with the script's path first ("/usr/bin/env" adds the interpreter's
// name before it), and that path is no argument of the invocation. (A pod that names the
// interpreter and passes it the script is matched as it is.)
func withoutScript(args []string) []string {
	for i, a := range args {
		if i > 1 || i == 1 && filepath.Base(os.Args[0]) != "env" {
			break
		}
		if isScript(a) {
			return args[i+1:]
		}
	}
	return args
}

// Whether path is a file that starts with "#!".
func isScript(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	start := make([]byte, 2)
	n, _ := f.Read(start)
	return n == 2 && string(start) == "#!"
}

func decode(variable string, into any) error {
	text := os.Getenv(variable)
	if text == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(text), into); err != nil {
		return fmt.Errorf("%s %q: %v", variable, text, err)
	}
	return nil
}

func run(name string, s service) {
	for p, paths := range s.Ports {
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			fail(fmt.Errorf("STANDIN_SERVE: %q is not a port", p))
		}
		switch dir, webhook := s.Webhooks[p]; {
		case webhook:
			go listenWebhook(port, answer(paths), dir)
		case contains(s.TLS, port):
			go listen(port, answer(paths), true)
		default:
			go listen(port, answer(paths), false)
		}
	}
	if probers := os.Getenv("ISTIO_KUBE_APP_PROBERS"); probers != "" {
		handler, err := appProbes(probers)
		if err != nil {
			fail(err)
		}
		go listen(15020, handler, false)
	}
	fmt.Printf("airgap stand-in %s: serving %v\n", name, s.Ports)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "airgap stand-in: %v\n", err)
	os.Exit(2)
}

var variable = regexp.MustCompile(`\$\([A-Za-z_][A-Za-z0-9_]*\)`)

// Whether this process is that invocation: its arguments, and its variables' values.
func (i invocation) matches(args []string) bool {
	if len(i.Args) != len(args) {
		return false
	}
	for n, p := range i.Args {
		if !like(p, args[n]) {
			return false
		}
	}
	for name, p := range i.Env {
		if !like(p, os.Getenv(name)) {
			return false
		}
	}
	return true
}

// Whether text is the pattern, each "$(VAR)" in it standing for any text.
func like(pattern, text string) bool {
	literal := variable.Split(pattern, -1)
	for j := range literal {
		literal[j] = regexp.QuoteMeta(literal[j])
	}
	return regexp.MustCompile("^" + strings.Join(literal, ".*") + "$").MatchString(text)
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
