package browser_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

const (
	// requireEnv turns a missing browser into a failure, for CI, where a
	// skip would hide a broken install.
	requireEnv = "WSFORGE_BROWSER_REQUIRE"
	// screenshotEnv names a directory that keeps the screenshots of
	// failed tests; without it they go to the test's temporary directory,
	// which is removed when the test ends unless the run is kept alive.
	screenshotEnv = "WSFORGE_BROWSER_SCREENSHOTS"

	// guard bounds every wait; reaching it is a failure, not a way of
	// letting time pass. Generous, as CI is a loaded 2-core machine.
	guard = 30 * time.Second
)

// The examples the tests start, by the name go build gives their binary.
var examplePackages = []string{"./examples/echo/server", "./examples/chat", "./examples/command", "./examples/filewatch", "./examples/http2"}

var (
	chromePath string
	chromeErr  error

	buildOnce sync.Once
	binDir    string
	buildErr  error

	browserOnce   sync.Once
	browserCtx    context.Context
	browserCancel context.CancelFunc = func() {}
	browserErr    error
)

func TestMain(m *testing.M) {
	chromePath, chromeErr = findChromium()
	if chromeErr != nil && os.Getenv(requireEnv) == "" {
		fmt.Fprintf(os.Stderr, "browser: %v, the browser tests skip (install: apt-get install chromium; %s=1 makes this a failure)\n", chromeErr, requireEnv)
	}
	code := m.Run()
	browserCancel()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func findChromium() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium, chromium-browser or google-chrome on PATH")
}

// needBrowser skips the test when there is no browser (fails it under
// requireEnv) and returns the shared browser's context otherwise.
func needBrowser(t *testing.T) context.Context {
	t.Helper()
	if chromeErr != nil {
		if os.Getenv(requireEnv) != "" {
			require.FailNow(t, fmt.Sprintf("%v, and %s is set", chromeErr, requireEnv))
		}
		t.Skipf("%v; install chromium to run the browser tests", chromeErr)
	}
	browserOnce.Do(func() {
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(chromePath),
			// Its sandbox needs user namespaces, which containers and
			// root (as in CI) do not offer; the pages are our own.
			chromedp.NoSandbox,
			chromedp.Flag("disable-gpu", true),
			// The http2 example's certificate is self-signed.
			chromedp.Flag("ignore-certificate-errors", true),
		)
		allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancel := chromedp.NewContext(allocCtx)
		browserCtx = ctx
		browserCancel = func() { cancel(); allocCancel() }
		// Start the browser now, on its first blank tab, so that a
		// failure to start is reported once and tab contexts made from
		// ctx open new tabs. On ctx itself: the browser lives as long as
		// the context of its first action, so no timeout here.
		browserErr = chromedp.Do(ctx)
	})
	require.NoError(t, browserErr, "starting %s", chromePath)
	return browserCtx
}

// example is a running example program.
type example struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  string        // http://127.0.0.1:port
	done chan struct{} // closed when the program has exited
	err  error         // its exit error, once done
	mu   sync.Mutex
	log  strings.Builder
}

var listening = regexp.MustCompile(`https?://127\.0\.0\.1:[0-9]+`)

// startExample builds the examples (once) and runs the one named bin on a
// free loopback port, as go run would.
func startExample(t *testing.T, bin string, args ...string) *example {
	t.Helper()
	return startExampleEnv(t, nil, bin, args...)
}

// startExampleEnv is startExample with env added to the program's
// environment.
func startExampleEnv(t *testing.T, env []string, bin string, args ...string) *example {
	t.Helper()
	needBrowser(t) // skip before building when there is no browser
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "wsforge-browser-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", append([]string{"build", "-o", binDir + string(filepath.Separator)}, examplePackages...)...)
		cmd.Dir = ".." // the library's module, where the examples are
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return runExample(t, env, bin, filepath.Join(binDir, bin), args...)
}

// runExample runs the example program at path, built already, on a free
// loopback port; name is what the test's log calls it. The test ends it
// with SIGINT if it is still running, and logs its output if the test
// failed.
func runExample(t *testing.T, env []string, name, path string, args ...string) *example {
	t.Helper()
	e := &example{t: t, done: make(chan struct{})}
	e.cmd = exec.Command(path, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	if env != nil {
		e.cmd.Env = append(os.Environ(), env...)
	}
	stderr, err := e.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, e.cmd.Start())
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			e.mu.Lock()
			e.log.WriteString(line + "\n")
			e.mu.Unlock()
			if u := listening.FindString(line); u != "" {
				select {
				case urls <- u:
				default:
				}
			}
		}
		e.err = e.cmd.Wait()
		close(e.done)
	}()
	t.Cleanup(func() {
		e.cmd.Process.Signal(os.Interrupt)
		select {
		case <-e.done:
		case <-time.After(guard):
			e.cmd.Process.Kill()
			<-e.done
		}
		if t.Failed() {
			e.mu.Lock()
			t.Logf("%s's output:\n%s", name, e.log.String())
			e.mu.Unlock()
		}
	})
	select {
	case e.url = <-urls:
	case <-e.done:
		require.FailNow(t, name+" exited before listening", "%v\n%s", e.err, e.output())
	case <-time.After(guard):
		require.FailNow(t, name+" did not say where it listens")
	}
	return e
}

func (e *example) output() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.log.String()
}

// interrupt sends the program SIGINT, as Ctrl-C does, and returns a
// function that waits for it to exit and checks that it exited cleanly.
func (e *example) interrupt() (waitExit func()) {
	require.NoError(e.t, e.cmd.Process.Signal(os.Interrupt))
	return func() {
		select {
		case <-e.done:
			require.NoError(e.t, e.err, "exit after SIGINT")
		case <-time.After(guard):
			require.FailNow(e.t, "no exit after SIGINT")
		}
	}
}

// page is one browser tab.
type page struct {
	t    *testing.T
	name string
	ctx  context.Context
	// close closes the tab, as a user closing it does.
	close func()
}

// openPage opens url in a new tab. If the test fails, a screenshot of the
// tab is saved first and its path logged.
func openPage(t *testing.T, url, name string) *page {
	t.Helper()
	bctx := needBrowser(t)
	tabCtx, cancelTab := chromedp.NewContext(bctx)
	p := &page{t: t, name: name, ctx: tabCtx}
	var once sync.Once
	p.close = func() { once.Do(func() { chromedp.Cancel(tabCtx); cancelTab() }) }
	t.Cleanup(func() {
		if t.Failed() {
			p.screenshot()
		}
		p.close()
	})
	// The tab lives as long as the context of its first action, so that
	// one, which only opens it, runs on tabCtx itself, not on one of
	// do's contexts with a timeout.
	require.NoError(t, chromedp.Do(tabCtx), "opening a tab")
	p.do(chromedp.Navigate(url))
	return p
}

func (p *page) screenshot() {
	dir := os.Getenv(screenshotEnv)
	if dir == "" {
		dir = p.t.TempDir()
	}
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
		p.t.Logf("screenshot of %s: %v", p.name, err)
		return
	}
	file := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(p.t.Name())+"-"+p.name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		p.t.Logf("screenshot of %s: %v", p.name, err)
		return
	}
	p.t.Logf("screenshot of %s: %s", p.name, file)
}

// do runs actions in the tab, failing the test if one fails.
func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, guard)
	defer cancel()
	require.NoError(p.t, chromedp.Do(ctx, actions...), "page %s", p.name)
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, guard)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(p.t, err, "page %s: %s", p.name, expr)
	return v
}

// waitFor waits until the JavaScript expression cond is true in the page,
// evaluating it again on every change to the page's DOM, and fails the
// test with what the page shows if it never is.
func (p *page) waitFor(cond, what string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, guard+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(guard)))
	if err != nil {
		// The end of what it shows, where the latest lines of a log are.
		body, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body.innerText.slice(-3000)`))
		require.FailNow(p.t, fmt.Sprintf("page %s: waiting for %s: %v", p.name, what, err), "the page shows:\n%s", body)
	}
}

// waitText waits until the element sel's text contains want.
func (p *page) waitText(sel, want string) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf(`document.querySelector(%s).textContent.includes(%s)`, jsString(sel), jsString(want)),
		fmt.Sprintf("%s to show %q", sel, want))
}

// typeAndClick types text into the input sel, key by key, and clicks the
// button.
func (p *page) typeAndClick(sel, text, button string) {
	p.t.Helper()
	p.do(chromedp.SendKeys(chromedp.CSS(sel), text), chromedp.Click(chromedp.CSS(button)))
}

// childrenOf returns the processes whose parent is pid.
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	require.NoError(t, err)
	var kids []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parens.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			child, _ := strconv.Atoi(strings.SplitN(s, " ", 2)[0])
			kids = append(kids, child)
		}
	}
	return kids
}

// waitGone waits until process pid has terminated, on a pidfd: it becomes
// readable when the process exits, so no polling is needed.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, syscall.ESRCH) {
		return // gone already
	}
	require.NoError(t, err)
	defer unix.Close(fd)
	deadline := time.Now().Add(guard)
	for {
		left := time.Until(deadline)
		require.Positive(t, left, "process %d still running", pid)
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left.Milliseconds())+1)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		require.NoError(t, err)
		if n > 0 {
			return
		}
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string { return strconv.Quote(s) }
