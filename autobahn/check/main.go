// Command check summarises an Autobahn|Testsuite report and fails when any
// case did not pass:
//
//	go run ./autobahn/check autobahn/reports/server/index.json
//
// For each agent in the report it prints how many cases got each verdict,
// for both the behaviour during the case and the closing behaviour, then
// lists every case where either verdict is something other than OK or
// INFORMATIONAL. The exit status is 0 when there are no such cases, 1 when
// there are, and 2 when the report cannot be read.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// caseResult is the part of a case's index.json entry that check grades.
type caseResult struct {
	Behavior      string `json:"behavior"`
	BehaviorClose string `json:"behaviorClose"`
}

// report maps agent name to case id (such as "1.1.2") to result.
type report map[string]map[string]caseResult

// knownVerdicts are listed first and in this order, even with a zero count,
// so that tables from different runs line up.
var knownVerdicts = []string{"OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"}

// passes reports whether a verdict is acceptable: INFORMATIONAL cases only
// record what the implementation did, without grading it.
func passes(verdict string) bool {
	return verdict == "OK" || verdict == "INFORMATIONAL"
}

func loadReport(path string) (report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rep report
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	n := 0
	for _, cases := range rep {
		n += len(cases)
	}
	if n == 0 {
		// An empty report means the suite never ran anything; passing it
		// would hide a broken setup.
		return nil, fmt.Errorf("%s: report holds no cases", path)
	}
	return rep, nil
}

// compareCaseIDs orders ids such as "1.1.10" by their dot-separated parts,
// numerically where both parts are numbers, so that 1.1.2 < 1.1.10 < 2.1.
func compareCaseIDs(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, errA := strconv.Atoi(pa[i])
		nb, errB := strconv.Atoi(pb[i])
		switch {
		case errA == nil && errB == nil:
			if na != nb {
				if na < nb {
					return -1
				}
				return 1
			}
		case pa[i] != pb[i]:
			return strings.Compare(pa[i], pb[i])
		}
	}
	switch {
	case len(pa) < len(pb):
		return -1
	case len(pa) > len(pb):
		return 1
	}
	// Ids like "1.01" and "1.1" compare equal above; keep the order total.
	return strings.Compare(a, b)
}

func sortedCaseIDs(cases map[string]caseResult) []string {
	ids := make([]string, 0, len(cases))
	for id := range cases {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return compareCaseIDs(ids[i], ids[j]) < 0 })
	return ids
}

// verdictName makes a missing verdict visible in the output.
func verdictName(v string) string {
	if v == "" {
		return "(missing)"
	}
	return v
}

// summarizeAgent writes the verdict table and the failing cases of one agent
// and returns how many cases failed.
func summarizeAgent(w io.Writer, agent string, cases map[string]caseResult) int {
	behavior := map[string]int{}
	closing := map[string]int{}
	for _, r := range cases {
		behavior[verdictName(r.Behavior)]++
		closing[verdictName(r.BehaviorClose)]++
	}
	verdicts := append([]string(nil), knownVerdicts...)
	var others []string
	for _, counts := range []map[string]int{behavior, closing} {
		for v := range counts {
			if !contains(verdicts, v) && !contains(others, v) {
				others = append(others, v)
			}
		}
	}
	sort.Strings(others)
	verdicts = append(verdicts, others...)

	fmt.Fprintf(w, "agent %s: %d cases\n", agent, len(cases))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  verdict\tbehavior\tbehaviorClose")
	for _, v := range verdicts {
		fmt.Fprintf(tw, "  %s\t%d\t%d\n", v, behavior[v], closing[v])
	}
	tw.Flush()

	var failed []string
	for _, id := range sortedCaseIDs(cases) {
		r := cases[id]
		if !passes(r.Behavior) || !passes(r.BehaviorClose) {
			failed = append(failed, id)
		}
	}
	if len(failed) == 0 {
		fmt.Fprintf(w, "all cases OK or INFORMATIONAL\n")
		return 0
	}
	fmt.Fprintf(w, "%d cases not OK:\n", len(failed))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, id := range failed {
		r := cases[id]
		fmt.Fprintf(tw, "  %s\tbehavior=%s\tbehaviorClose=%s\n", id, verdictName(r.Behavior), verdictName(r.BehaviorClose))
	}
	tw.Flush()
	return len(failed)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// run is main without the process: args excludes the program name, and the
// return value is the exit status.
func run(args []string, stdout io.Writer) int {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stdout, "usage: check path/to/index.json")
		return 2
	}
	rep, err := loadReport(args[0])
	if err != nil {
		var syntaxErr *json.SyntaxError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntaxErr), errors.As(err, &typeErr):
			fmt.Fprintf(stdout, "check: invalid report: %v\n", err)
		default:
			fmt.Fprintf(stdout, "check: %v\n", err)
		}
		return 2
	}

	agents := make([]string, 0, len(rep))
	for agent := range rep {
		agents = append(agents, agent)
	}
	sort.Strings(agents)
	failed := 0
	for i, agent := range agents {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		failed += summarizeAgent(stdout, agent, rep[agent])
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout))
}
