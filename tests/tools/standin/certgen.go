package main

// What kube-webhook-certgen (ingress-nginx's images/kube-webhook-certgen) does, for the charts whose
// admission webhooks it sets up: `create` makes a CA and a serving certificate for the webhook's
// Service and writes them into a Secret (keys ca, cert, key) unless it exists; `patch` puts that CA
// into the webhook configurations' caBundle (and a failurePolicy). It talks to the API server as a
// pod does, with its service account's token, so the chart's RBAC must allow it.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

const serviceAccount = "/var/run/secrets/kubernetes.io/serviceaccount"

func certgen(args []string) error {
	flags := flag.NewFlagSet(args[0], flag.ContinueOnError)
	namespace := flags.String("namespace", "", "")
	secret := flags.String("secret-name", "", "")
	host := flags.String("host", "", "")
	certName := flags.String("cert-name", "cert", "")
	keyName := flags.String("key-name", "key", "")
	caName := flags.String("ca-name", "ca", "")
	webhook := flags.String("webhook-name", "", "")
	validating := flags.Bool("patch-validating", true, "")
	mutating := flags.Bool("patch-mutating", true, "")
	failurePolicy := flags.String("patch-failure-policy", "", "")
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	api, err := inCluster()
	if err != nil {
		return err
	}
	secretPath := fmt.Sprintf("/api/v1/namespaces/%s/secrets/%s", *namespace, *secret)
	if args[0] == "create" {
		status, answer, err := api.do("GET", secretPath, nil)
		switch {
		case err != nil:
			return err
		case status == http.StatusOK:
			return nil // kept, as the tool keeps a Secret it finds
		case status != http.StatusNotFound:
			return fmt.Errorf("GET %s: HTTP %d: %s", secretPath, status, answer)
		}
		ca, cert, key, err := issue(strings.Split(*host, ","))
		if err != nil {
			return err
		}
		object := map[string]any{"apiVersion": "v1", "kind": "Secret",
			"metadata": map[string]any{"name": *secret, "namespace": *namespace},
			"data":     map[string][]byte{*caName: ca, *certName: cert, *keyName: key}}
		return api.expect(http.StatusCreated, "POST", fmt.Sprintf("/api/v1/namespaces/%s/secrets", *namespace), object, nil)
	}
	var stored struct {
		Data map[string][]byte `json:"data"`
	}
	if err := api.expect(http.StatusOK, "GET", secretPath, nil, &stored); err != nil {
		return err
	}
	ca, ok := stored.Data[*caName]
	if !ok {
		return fmt.Errorf("secret %s/%s has no key %s", *namespace, *secret, *caName)
	}
	for kind, patch := range map[string]bool{"validating": *validating, "mutating": *mutating} {
		if !patch {
			continue
		}
		path := fmt.Sprintf("/apis/admissionregistration.k8s.io/v1/%swebhookconfigurations/%s", kind, *webhook)
		var config map[string]any
		if err := api.expect(http.StatusOK, "GET", path, nil, &config); err != nil {
			return err
		}
		hooks, _ := config["webhooks"].([]any)
		for _, h := range hooks {
			hook := h.(map[string]any)
			hook["clientConfig"].(map[string]any)["caBundle"] = ca
			if *failurePolicy != "" {
				hook["failurePolicy"] = *failurePolicy
			}
		}
		if err := api.expect(http.StatusOK, "PUT", path, config, nil); err != nil {
			return err
		}
	}
	return nil
}

// A CA and a certificate it signs for the hosts, each PEM, and the certificate's key.
func issue(hosts []string) (ca, cert, key []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	caTemplate := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kube-webhook-certgen"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: hosts[0]}, DNSNames: hosts,
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caTemplate, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		return nil, nil, nil, err
	}
	block := func(kind string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}) }
	return block("CERTIFICATE", caDER), block("CERTIFICATE", leafDER), block("EC PRIVATE KEY", keyDER), nil
}

// The API server as a pod reaches it: the kubernetes Service, the service account's token and CA.
type apiServer struct {
	base   string
	token  string
	client *http.Client
}

func inCluster() (*apiServer, error) {
	token, err := os.ReadFile(serviceAccount + "/token")
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(serviceAccount + "/ca.crt")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s/ca.crt holds no certificate", serviceAccount)
	}
	host := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	return &apiServer{base: "https://" + host, token: strings.TrimSpace(string(token)),
		client: &http.Client{Transport: transport, Timeout: 30 * time.Second}}, nil
}

func (a *apiServer) do(method, path string, body any) (int, []byte, error) {
	var reader io.Reader
	if body != nil {
		encoded, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		reader = bytes.NewReader(encoded)
	}
	req, err := http.NewRequest(method, a.base+path, reader)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return resp.StatusCode, answer, err
}

// A request that must answer `status`; the answer is decoded into `into` when it is not nil.
func (a *apiServer) expect(status int, method, path string, body, into any) error {
	got, answer, err := a.do(method, path, body)
	if err != nil {
		return err
	}
	if got != status {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, got, answer)
	}
	if into == nil {
		return nil
	}
	return json.Unmarshal(answer, into)
}
