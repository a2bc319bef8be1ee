package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requireRedisEnv turns a missing redis-server into a failure, for CI,
// which installs it: there a skip would hide a broken install step (as
// WSFORGE_INTEROP_REQUIRE_PEERS does for interop/).
const requireRedisEnv = "WSFORGE_CLUSTER_REQUIRE_REDIS"

// redisServer is a real redis-server, alone in a temporary directory on a
// port of its own, killed when the test ends.
type redisServer struct {
	t    testing.TB
	bin  string
	dir  string
	addr string

	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	log    strings.Builder
}

// startRedis starts a redis-server with an append-only file fsynced before
// every reply (appendfsync always): a message is acknowledged to its
// sender once XADD has returned, and only this makes "returned" mean
// "survives a crash of Redis", which the restart test kills it with. It
// skips the test if redis-server is not installed, unless
// WSFORGE_CLUSTER_REQUIRE_REDIS is set.
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(requireRedisEnv) != "" {
			t.Fatalf("redis-server not found and %s is set: %v", requireRedisEnv, err)
		}
		t.Skipf("redis-server not installed, test skipped (install: apt-get install redis-server; set %s=1 to fail instead)", requireRedisEnv)
	}
	s := &redisServer{t: t, bin: bin, dir: t.TempDir(), addr: freeAddr(t)}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func (s *redisServer) start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.addr)
	cmd := exec.Command(s.bin,
		"--bind", "127.0.0.1", "--port", port, "--dir", s.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always",
		"--logfile", "", "--daemonize", "no")
	out, err := cmd.StdoutPipe()
	require.NoError(s.t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(s.t, cmd.Start())
	s.cmd, s.exited = cmd, make(chan struct{})

	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			s.mu.Lock()
			fmt.Fprintln(&s.log, sc.Text())
			s.mu.Unlock()
			if !signalled && strings.Contains(sc.Text(), "Ready to accept connections") {
				close(ready)
				signalled = true
			}
		}
		cmd.Wait()
		close(s.exited)
	}()
	select {
	case <-ready:
	case <-s.exited:
		s.t.Fatalf("redis-server exited before it was ready:\n%s", s.output())
	case <-time.After(guard):
		s.t.Fatalf("redis-server not ready after %v:\n%s", guard, s.output())
	}
}

func (s *redisServer) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// kill kills redis-server the hard way, as a crash would.
func (s *redisServer) kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Kill()
	<-s.exited
}
