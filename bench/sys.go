package main

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// snapshot is one side's resource counters at an instant. CPU comes from
// getrusage(RUSAGE_SELF), so it covers every thread of the process: the
// handlers, the runtime's network poller and the garbage collector.
type snapshot struct {
	userNs, sysNs int64
	mallocs       uint64
}

// sideStats is what one side reports for a measured window. CPUNs is user
// plus system time; UserNs alone is the part spent outside the kernel.
type sideStats struct {
	CPUNs   int64  `json:"cpu_ns"`
	UserNs  int64  `json:"user_ns"`
	Mallocs uint64 `json:"mallocs"`
}

func cpuNow() (user, sys int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return ru.Utime.Nano(), ru.Stime.Nano()
}

// begin reads the allocation counter before the CPU clock and end reads it
// after, so that ReadMemStats' own stop-the-world stays out of the CPU window.
func begin() snapshot {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u, s := cpuNow()
	return snapshot{userNs: u, sysNs: s, mallocs: ms.Mallocs}
}

func (s snapshot) end() sideStats {
	u, sy := cpuNow()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return sideStats{
		CPUNs:   (u - s.userNs) + (sy - s.sysNs),
		UserNs:  u - s.userNs,
		Mallocs: ms.Mallocs - s.mallocs,
	}
}

// raiseNoFile lifts RLIMIT_NOFILE so that want descriptors fit, raising the
// hard limit too when the process may (root). It returns the soft limit in
// force afterwards.
func raiseNoFile(want uint64) uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if rl.Cur >= want {
		return rl.Cur
	}
	if rl.Max < want {
		up := syscall.Rlimit{Cur: want, Max: want}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up) == nil {
			return want
		}
	}
	rl.Cur = rl.Max
	if rl.Cur > want {
		rl.Cur = want
	}
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	return rl.Cur
}

// cpuModel reads the first "model name" line of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// pinning decides how children are pinned: with taskset on two distinct
// cores when the machine has them, otherwise not at all.
type pinning struct {
	taskset string
	server  string
	client  string
}

func choosePinning(cpus string) pinning {
	if runtime.NumCPU() < 2 || cpus == "" || cpus == "none" {
		return pinning{}
	}
	path, err := exec.LookPath("taskset")
	if err != nil {
		return pinning{}
	}
	s, c, ok := strings.Cut(cpus, ",")
	if !ok {
		return pinning{}
	}
	return pinning{taskset: path, server: s, client: c}
}

func (p pinning) describe() string {
	if p.taskset == "" {
		return "not pinned (fewer than 2 CPUs or no taskset)"
	}
	return "server on CPU " + p.server + ", client on CPU " + p.client + " (taskset)"
}

// command builds the exec.Cmd for a child, pinned to cpu when pinning is on.
func (p pinning) command(exe, cpu string, args []string) *exec.Cmd {
	if p.taskset == "" {
		return exec.Command(exe, args...)
	}
	return exec.Command(p.taskset, append([]string{"-c", cpu, exe}, args...)...)
}

// moduleVersions lists the benchmarked libraries' versions from the build
// information, so a results file says what it measured.
func moduleVersions() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var parts []string
	for _, d := range bi.Deps {
		switch d.Path {
		case "github.com/gorilla/websocket", "github.com/lxzan/gws",
			"github.com/gobwas/ws", "github.com/coder/websocket":
			parts = append(parts, d.Path+" "+d.Version)
		}
	}
	return strings.Join(parts, ", ")
}

// otherCPU sums the CPU time of every process on the machine except this
// one, from /proc/[pid]/stat: utime+stime and the cutime+cstime of children
// they have reaped. Per-process times are scaled by the kernel to the exact
// run time, unlike /proc/stat's tick samples, which miss processes that run
// in short bursts. This process's own children land in its own cutime, so
// they are excluded too. Processes that exit unreaped between two calls are
// missed; that is good enough to notice a competing test suite.
func otherCPU() time.Duration {
	self := os.Getpid()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name may contain spaces; fields resume after ')'.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		// f[0] is field 3 (state); utime..cstime are fields 14..17.
		if len(f) < 15 {
			continue
		}
		for _, v := range f[11:15] {
			n, _ := strconv.ParseInt(v, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
