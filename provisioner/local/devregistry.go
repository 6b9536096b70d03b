// A Confluent-compatible schema registry for laptops and tests: franz-go's in-memory srfake served
// on a chosen loopback address, built by provisioner/local/devregistry.py into the cache.
//
// What srfake lacks and this adds:
//   - a journal (-journal FILE): every schema registered is appended to it and replayed on start,
//     so a restarted registry serves the same ids (srfake keeps its state in memory only);
//   - basic auth from the environment (SRFAKE_BASIC_AUTH=user:password, never a flag: a command
//     line is visible to every user of the machine).
//
// It prints its URL on stdout once it listens, and serves until SIGTERM or SIGINT.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/twmb/franz-go/pkg/sr/srfake"
)

type entry struct {
	Path string          `json:"path"`
	Body json.RawMessage `json:"body"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	journal := flag.String("journal", "", "file that keeps the registered schemas across restarts")
	flag.Parse()

	var opts []srfake.Option
	auth := ""
	if value := os.Getenv("SRFAKE_BASIC_AUTH"); value != "" {
		auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(value))
		opts = append(opts, srfake.WithAuth(auth))
	}
	handler := srfake.NewRegistry(opts...).Handler()

	var mu sync.Mutex
	var out *os.File
	if *journal != "" {
		if err := replay(*journal, handler, auth); err != nil {
			fail(err)
		}
		file, err := os.OpenFile(*journal, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			fail(err)
		}
		out = file
	}

	wrapped := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		registering := out != nil && req.Method == http.MethodPost && strings.HasPrefix(req.URL.Path, "/subjects/") &&
			strings.HasSuffix(req.URL.Path, "/versions")
		if !registering {
			handler.ServeHTTP(w, req)
			return
		}
		body, err := io.ReadAll(io.LimitReader(req.Body, 16<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		recorder := httptest.NewRecorder()
		mu.Lock()
		defer mu.Unlock()
		handler.ServeHTTP(recorder, req)
		if recorder.Code == http.StatusOK && json.Valid(body) {
			line, _ := json.Marshal(entry{Path: req.URL.Path, Body: body})
			if _, err := out.Write(append(line, '\n')); err != nil {
				fail(err)
			}
		}
		for name, values := range recorder.Header() {
			w.Header()[name] = values
		}
		w.WriteHeader(recorder.Code)
		_, _ = w.Write(recorder.Body.Bytes())
	})

	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		fail(err)
	}
	fmt.Printf("http://%s\n", listener.Addr().String())
	os.Stdout.Sync()

	server := &http.Server{Handler: wrapped}
	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
		<-signals
		server.Close()
	}()
	if err := server.Serve(listener); err != nil && err != http.ErrServerClosed {
		fail(err)
	}
}

// replay registers the journal's schemas again, in order, so each gets the id it had.
func replay(path string, handler http.Handler, auth string) error {
	file, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1<<20), 32<<20)
	for scanner.Scan() {
		var e entry
		if err := json.Unmarshal(scanner.Bytes(), &e); err != nil {
			continue // a line cut short by a kill: everything before it is intact
		}
		req := httptest.NewRequest(http.MethodPost, e.Path, bytes.NewReader(e.Body))
		req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		recorder := httptest.NewRecorder()
		handler.ServeHTTP(recorder, req)
		if recorder.Code != http.StatusOK {
			return fmt.Errorf("replaying %s: %d %s", e.Path, recorder.Code, recorder.Body.String())
		}
	}
	return scanner.Err()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "registry:", err)
	os.Exit(1)
}
