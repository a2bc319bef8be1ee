package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/wsforge/websocket"
)

// Config holds what a Server runs and its limits. Tests shrink the
// timeouts; main starts from DefaultConfig.
type Config struct {
	// Command is the program and its arguments, run once per page.
	Command []string
	// ReadLimit is the largest message accepted from a page; a larger one
	// ends the connection with close code 1009. Input is streamed to the
	// program through a fixed 32 KiB buffer whatever the limit, so what a
	// page sends never piles up in the server.
	ReadLimit int64
	// WriteWait bounds each write to the page, pings and close included.
	WriteWait time.Duration
	// PongWait is how long a page may stay silent (no message, no pong)
	// before it is considered gone; PingPeriod, shorter, is how often the
	// server pings it.
	PongWait, PingPeriod time.Duration
	// Grace is how long the program gets to exit at each step of ending
	// it: after its standard input is closed, after SIGINT and after
	// SIGTERM; then it is killed.
	Grace time.Duration
	// MaxLine is the longest piece of output held back waiting for its
	// newline; a longer line goes to the page in pieces of this size.
	MaxLine int
}

// DefaultConfig suits an interactive program behind a browser page.
var DefaultConfig = Config{
	Command:    []string{"cat"},
	ReadLimit:  64 << 10,
	WriteWait:  10 * time.Second,
	PongWait:   60 * time.Second,
	PingPeriod: 50 * time.Second,
	Grace:      time.Second,
	MaxLine:    4096,
}

// message is what the server sends the page, as JSON: the program's
// start ("start", Data the command line), a piece of its output
// ("stdout" or "stderr", Data up to and including a newline) or its end
// ("exit", Data how it ended and Code its exit code, -1 if killed by a
// signal).
type message struct {
	Type string `json:"type"`
	Data string `json:"data"`
	Code int    `json:"code,omitempty"`
}

// Server is the /ws handler: it runs Config.Command for every connection.
type Server struct {
	cfg      Config
	path     string
	upgrader websocket.Upgrader

	mu       sync.Mutex
	closed   bool
	done     chan struct{} // closed by Close
	sessions sync.WaitGroup

	// reaped, if set, is called with the state of every program once it
	// has been waited for; the tests use it to see how it ended.
	reaped func(*os.ProcessState)
}

// NewServer checks that cfg.Command can be found and returns its server.
func NewServer(cfg Config) (*Server, error) {
	if len(cfg.Command) == 0 {
		return nil, errors.New("no command")
	}
	path, err := exec.LookPath(cfg.Command[0])
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, path: path, done: make(chan struct{})}, nil
}

// Close tells every page that the server is going away (close code
// 1001), ends every program and returns once all of them are reaped.
// Later requests get 503.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	s.mu.Unlock()
	s.sessions.Wait()
}

// enter counts a new session unless the server is closed. Counting under
// the lock keeps Add from racing with the Wait in Close.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.sessions.Add(1)
	return true
}

// ServeHTTP upgrades the request, starts the program and relays between
// the two until one of them ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	defer s.sessions.Done()
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade has already replied with an HTTP error.
		log.Printf("upgrade %s: %v", r.RemoteAddr, err)
		return
	}
	defer conn.Close()
	conn.SetReadLimit(s.cfg.ReadLimit)

	p, err := s.start()
	if err != nil {
		log.Printf("start %q: %v", s.cfg.Command, err)
		conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseInternalServerErr, "cannot start the program"),
			time.Now().Add(s.cfg.WriteWait))
		return
	}
	ss := &session{cfg: &s.cfg, conn: conn, gone: make(chan struct{}), inputDone: make(chan struct{})}
	ss.run(p, s.done)
	if s.reaped != nil {
		s.reaped(p.cmd.ProcessState)
	}
}

// process is a running program and our ends of its three pipes.
type process struct {
	cmd            *exec.Cmd
	stdin          *os.File
	stdout, stderr *os.File
	exited         chan struct{} // closed once the program is reaped
}

func (s *Server) start() (*process, error) {
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	inR, inW, err := pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	errR, errW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	// Files, not io.Readers and io.Writers, so that exec starts no copying
	// goroutines of its own and Wait returns when the program exits.
	cmd := &exec.Cmd{Path: s.path, Args: s.cfg.Command, Stdin: inR, Stdout: outW, Stderr: errW}
	ownProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, err
	}
	// The program has its copies; ours of its ends would keep the output
	// pipes from ever reporting end of file.
	inR.Close()
	outW.Close()
	errW.Close()
	p := &process{cmd: cmd, stdin: inW, stdout: outR, stderr: errR, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// session relays between one page and its program.
type session struct {
	cfg  *Config
	conn *websocket.Conn

	writeMu sync.Mutex // one data message at a time, each with its deadline

	gone      chan struct{} // closed once the page has left or cannot be reached
	goneOnce  sync.Once
	inputDone chan struct{} // closed when the input pump returns
}

func (ss *session) leave() { ss.goneOnce.Do(func() { close(ss.gone) }) }

func (ss *session) send(m message) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ss.writeMu.Lock()
	defer ss.writeMu.Unlock()
	ss.conn.SetWriteDeadline(time.Now().Add(ss.cfg.WriteWait))
	if err := ss.conn.WriteMessage(websocket.TextMessage, data); err != nil {
		ss.leave()
		return err
	}
	return nil
}

func (ss *session) run(p *process, shutdown <-chan struct{}) {
	var output sync.WaitGroup
	output.Add(2)
	go func() { defer output.Done(); ss.pumpOutput(p.stdout, "stdout") }()
	go func() { defer output.Done(); ss.pumpOutput(p.stderr, "stderr") }()
	outputDone := make(chan struct{})
	go func() { output.Wait(); close(outputDone) }()
	stopPing := make(chan struct{})
	pingDone := make(chan struct{})
	go func() { defer close(pingDone); ss.ping(stopPing) }()

	ss.send(message{Type: "start", Data: strings.Join(ss.cfg.Command, " ")})
	go func() { defer close(ss.inputDone); ss.pumpInput(p.stdin) }()

	select {
	case <-p.exited:
		// Output the program wrote just before exiting may still be in
		// the pipes. A child it left behind may hold them open, so the
		// wait is bounded.
		select {
		case <-outputDone:
		case <-time.After(ss.cfg.Grace):
		}
		st := p.cmd.ProcessState
		ss.send(message{Type: "exit", Data: st.String(), Code: st.ExitCode()})
		ss.closeWith(websocket.CloseNormalClosure, "program exited")
	case <-ss.gone:
		ss.terminate(p)
	case <-shutdown:
		ss.closeWith(websocket.CloseGoingAway, "server shutting down")
		ss.terminate(p)
	}

	// Everything below unblocks whatever is still running: the pipes'
	// Close interrupts reads and writes blocked on them, the Conn's Close
	// those blocked on the network.
	<-p.exited
	p.stdin.Close()
	p.stdout.Close()
	p.stderr.Close()
	ss.conn.Close()
	close(stopPing)
	<-outputDone
	<-ss.inputDone
	<-pingDone
}

// closeWith starts the closing handshake and waits a bounded time for the
// page's answer, which ends the input pump.
func (ss *session) closeWith(code int, text string) {
	ss.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text),
		time.Now().Add(ss.cfg.WriteWait))
	select {
	case <-ss.inputDone:
	case <-time.After(ss.cfg.WriteWait):
	}
}

// terminate ends the program: end of input first, which is enough for
// most filters, then SIGINT, SIGTERM and SIGKILL, the program getting
// Grace to exit after each. It returns once the program is reaped.
func (ss *session) terminate(p *process) {
	p.stdin.Close()
	for _, sig := range endSignals {
		select {
		case <-p.exited:
			return
		case <-time.After(ss.cfg.Grace):
		}
		if err := signalGroup(p.cmd, sig); err != nil {
			log.Printf("signal %v to %d: %v", sig, p.cmd.Process.Pid, err)
		}
	}
	<-p.exited
}

// pumpOutput sends the program's output to the page a line at a time, as
// soon as each line is complete.
func (ss *session) pumpOutput(r io.Reader, kind string) {
	br := bufio.NewReaderSize(r, ss.cfg.MaxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if ss.send(message{Type: kind, Data: string(line)}) != nil {
				return
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			if len(line) == 0 && !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				log.Printf("%s: %v", kind, err)
			}
			return
		}
	}
}

// pumpInput writes every message from the page to the program's standard
// input, adding a newline where the message has none. Messages are copied
// through one fixed buffer: a program that stops reading stops this loop,
// so the page's further messages wait in the network, not in our memory.
func (ss *session) pumpInput(stdin io.Writer) {
	defer ss.leave()
	ss.conn.SetReadDeadline(time.Now().Add(ss.cfg.PongWait))
	ss.conn.SetPongHandler(func(string) error {
		return ss.conn.SetReadDeadline(time.Now().Add(ss.cfg.PongWait))
	})
	buf := make([]byte, 32<<10)
	w := &lastByteWriter{w: stdin}
	for {
		_, r, err := ss.conn.NextReader()
		if err != nil {
			if websocket.IsUnexpectedCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				log.Printf("read %s: %v", ss.conn.RemoteAddr(), err)
			}
			return
		}
		w.last = '\n'
		_, err = io.CopyBuffer(w, r, buf)
		if err == nil && w.last != '\n' {
			_, err = w.Write([]byte{'\n'})
		}
		if err != nil {
			if w.failed {
				// The program closed its input but may still be
				// writing: keep reading the page, for pongs and its
				// close, and drop what it sends.
				w.w = io.Discard
				continue
			}
			return // the read from the page failed
		}
	}
}

// lastByteWriter remembers the last byte written through it, and whether
// a write failed (as opposed to the read feeding it).
type lastByteWriter struct {
	w      io.Writer
	last   byte
	failed bool
}

func (l *lastByteWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if n > 0 {
		l.last = p[n-1]
	}
	if err != nil {
		l.failed = true
	}
	return n, err
}

// ping keeps the connection alive and notices a page that has vanished
// without closing.
func (ss *session) ping(stop <-chan struct{}) {
	t := time.NewTicker(ss.cfg.PingPeriod)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if err := ss.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(ss.cfg.WriteWait)); err != nil {
				ss.leave()
				return
			}
		}
	}
}
