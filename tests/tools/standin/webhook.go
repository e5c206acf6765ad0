package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"time"
)

// An admission webhook's port: TLS with the certificate in dir (kube-webhook-certgen's `cert` and
// `key`, read at each handshake, since the Secret may be mounted after the program starts), every
// AdmissionReview allowed unchanged, anything else answered by probes.
func listenWebhook(port int, probes http.Handler, dir string) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			probes.ServeHTTP(w, r)
			return
		}
		review, err := allow(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(review)
	})
	server := &http.Server{Addr: fmt.Sprintf(":%d", port), Handler: handler, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert"), filepath.Join(dir, "key"))
			return &cert, err
		}}}
	fail(server.ListenAndServeTLS("", ""))
}

// The answer to an AdmissionReview request: allowed, no patch, the request's uid.
func allow(body io.Reader) ([]byte, error) {
	var review struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Request    *struct {
			UID string `json:"uid"`
		} `json:"request"`
	}
	if err := json.NewDecoder(body).Decode(&review); err != nil || review.Request == nil {
		return nil, fmt.Errorf("not an AdmissionReview request: %v", err)
	}
	return json.Marshal(map[string]any{
		"apiVersion": review.APIVersion,
		"kind":       review.Kind,
		"response":   map[string]any{"uid": review.Request.UID, "allowed": true},
	})
}
