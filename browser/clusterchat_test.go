package browser_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requireRedisEnv turns a missing redis-server into a failure, as
// requireEnv does a missing browser; CI sets both.
const requireRedisEnv = "WSFORGE_CLUSTER_REQUIRE_REDIS"

// startRedis starts a redis-server of the test's own, on a free loopback
// port in a temporary directory, and returns its address; the test kills
// it when it ends. Without redis-server the test skips, unless
// requireRedisEnv or requireEnv is set.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		for _, env := range []string{requireRedisEnv, requireEnv} {
			if os.Getenv(env) != "" {
				require.FailNow(t, fmt.Sprintf("%v, and %s is set", err, env))
			}
		}
		t.Skipf("%v; install redis-server to run the cluster chat's browser test (%s=1 makes this a failure)", err, requireRedisEnv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--dir", t.TempDir(),
		"--save", "", "--appendonly", "no", "--logfile", "", "--daemonize", "no")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	ready, exited := make(chan struct{}), make(chan struct{})
	var log strings.Builder // written before exited is closed, read after
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if !signalled && strings.Contains(sc.Text(), "Ready to accept connections") {
				close(ready)
				signalled = true
			}
		}
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("redis-server's output:\n%s", log.String())
		}
	})
	select {
	case <-ready:
	case <-exited:
		require.FailNow(t, "redis-server exited before it was ready", log.String())
	case <-time.After(guard):
		require.FailNow(t, "redis-server not ready")
	}
	return addr
}

// buildClusterchat builds the cluster chat, a module of its own, into the
// test's temporary directory and returns the binary's path.
func buildClusterchat(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), ".")
	cmd.Dir = "../examples/clusterchat"
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build in %s:\n%s", cmd.Dir, out)
	return dir + string(os.PathSeparator) + "clusterchat"
}

// joinCluster fills in the cluster chat page's room and name and presses
// Join, then waits until the page says it is connected to node as name.
func joinCluster(p *page, node, name, room string) {
	p.t.Helper()
	p.do(
		chromedp.SetValue(chromedp.CSS("#room"), room),
		chromedp.SetValue(chromedp.CSS("#name"), name),
		chromedp.Click(chromedp.CSS("#join")),
	)
	p.waitText("#status", "connected to node "+node+" as "+name)
}

// clusterLog is, in a cluster chat page's log, a JavaScript array of the
// messages delivered ("ann: hi"), in the order shown. A message the page
// sent stays in the log as "sending ann: hi" until it comes back from the
// room's stream; those, and notices, are left out.
const clusterLog = `[...document.querySelectorAll("#log > div")]
	.filter(d => d.className === "" && d.firstChild.className === "meta" && !d.firstChild.textContent.startsWith("sending "))
	.map(d => d.firstChild.textContent.trim().split(" ").pop() + " " + d.lastChild.textContent)`

func clusterMessages(p *page) []string { return eval[[]string](p, clusterLog) }

// waitMessages waits until the page shows n messages and none waiting to
// be sent, and returns them.
func waitMessages(p *page, n int) []string {
	p.t.Helper()
	p.waitFor(fmt.Sprintf(`%s.length >= %d && !document.querySelector("#log .pending, #log .failed")`, clusterLog, n),
		fmt.Sprintf("%d messages", n))
	return clusterMessages(p)
}

// sendMessages types each text into the page's message box and presses
// Send, without waiting for anything to come back. It runs beside the
// test's goroutine, so it returns its error rather than failing the test.
func sendMessages(p *page, texts []string) error {
	ctx, cancel := context.WithTimeout(p.ctx, guard)
	defer cancel()
	for _, text := range texts {
		if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#msg"), text), chromedp.Click(chromedp.CSS("#send"))); err != nil {
			return fmt.Errorf("page %s: sending %q: %w", p.name, text, err)
		}
	}
	return nil
}

// recordStatus keeps every text the page's status line shows from now on
// in window.statuses. A page shows a close only until it reconnects,
// which it tries 125 to 250 ms later: on a loaded machine that may be
// before a wait for the text has started.
func recordStatus(p *page) {
	p.t.Helper()
	eval[bool](p, `(() => {
		const s = document.querySelector("#status");
		window.statuses = [s.textContent];
		new MutationObserver(() => window.statuses.push(s.textContent))
			.observe(s, {childList: true, characterData: true, subtree: true});
		return true;
	})()`)
	// What it showed, for a failure: the page itself shows only the last.
	p.t.Cleanup(func() {
		if p.t.Failed() {
			ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
			defer cancel()
			seen, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.statuses`))
			p.t.Logf("page %s's status line showed: %q (%v)", p.name, seen, err)
		}
	})
}

func waitStatusSeen(p *page, want string) {
	p.t.Helper()
	p.waitFor(`window.statuses.some(s => s.includes(`+jsString(want)+`))`, fmt.Sprintf("#status to show %q", want))
}

func TestClusterChatPages(t *testing.T) {
	needBrowser(t)
	redisAddr := startRedis(t)
	bin := buildClusterchat(t)
	nodeA := runExample(t, nil, "clusterchat node-a", bin, "-redis", redisAddr, "-node", "node-a")
	nodeB := runExample(t, nil, "clusterchat node-b", bin, "-redis", redisAddr, "-node", "node-b")

	ann := openPage(t, nodeA.url, "ann")
	ben := openPage(t, nodeB.url, "ben")
	cat := openPage(t, nodeB.url, "cat")
	joinCluster(ann, "node-a", "ann", "go")
	joinCluster(ben, "node-b", "ben", "go")
	joinCluster(cat, "node-b", "cat", "rust")

	// Presence crosses nodes: each page lists both users of the room.
	both := `[...document.querySelectorAll("#users li")].map(li => li.textContent).join() === "ann,ben"`
	ann.waitFor(both, "ann and ben in the presence list")
	ben.waitFor(both, "ann and ben in the presence list")
	cat.waitText("#users", "cat")
	assert.Equal(t, []string{"cat"}, users(cat))

	// Both pages type at once, so that messages from the two nodes
	// interleave in the room's stream; each page must show all of them,
	// and in one order, the stream's, whichever node it is on.
	const each = 6
	var annTexts, benTexts, want []string
	for i := 1; i <= each; i++ {
		annTexts = append(annTexts, fmt.Sprintf("a%d", i))
		benTexts = append(benTexts, fmt.Sprintf("b%d", i))
		want = append(want, fmt.Sprintf("ann: a%d", i), fmt.Sprintf("ben: b%d", i))
	}
	errs := make(chan error, 2)
	go func() { errs <- sendMessages(ann, annTexts) }()
	go func() { errs <- sendMessages(ben, benTexts) }()
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
	annGot := waitMessages(ann, 2*each)
	benGot := waitMessages(ben, 2*each)
	t.Logf("the order both pages must show: %q", annGot)
	assert.ElementsMatch(t, want, annGot, "ann's page")
	assert.Equal(t, annGot, benGot, "ben's page against ann's")
	// A page's messages are stored in the order it sent them.
	for name, texts := range map[string][]string{"ann": annTexts, "ben": benTexts} {
		own := slices.DeleteFunc(slices.Clone(annGot), func(m string) bool { return !strings.HasPrefix(m, name+": ") })
		for i := range own {
			own[i] = strings.TrimPrefix(own[i], name+": ")
		}
		assert.Equal(t, texts, own, "%s's messages in the order shown", name)
	}

	// The other room sees none of it: node-b has handed every message of
	// go to ben before cat sends, so had one leaked into rust it would be
	// in cat's log before cat's own. Nor does go see rust's: ann's next
	// message is stored after cat's.
	cat.typeAndClick("#msg", "crab", "#send")
	assert.Equal(t, []string{"cat: crab"}, waitMessages(cat, 1))
	ann.typeAndClick("#msg", "bye", "#send")
	want = append(slices.Clone(annGot), "ann: bye")
	assert.Equal(t, want, waitMessages(ann, len(want)), "ann's page")
	assert.Equal(t, want, waitMessages(ben, len(want)), "ben's page")

	// Ctrl-C: each node closes its pages with 1001 and exits 0.
	for _, p := range []*page{ann, ben, cat} {
		recordStatus(p)
	}
	waitA, waitB := nodeA.interrupt(), nodeB.interrupt()
	for _, p := range []*page{ann, ben, cat} {
		waitStatusSeen(p, "disconnected (1001 server shutting down)")
	}
	waitA()
	waitB()
}
