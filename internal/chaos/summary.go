package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
	"github.com/oauthkit/refresh/storetest"
)

type summaryInput struct {
	o          options
	sp         storeSpec
	start, end time.Time
	led        *ledger
	fl         *fleet
	stats      refreshtest.Stats
	v          verdict
	phases     map[string]int
}

// counted formats a map of counts as "a 3, b 1", largest first.
func counted[V int | int64](m map[string]V) string {
	keys := sortedKeys(m)
	slices.SortStableFunc(keys, func(a, b string) int { return int(m[b]) - int(m[a]) })
	var parts []string
	for _, k := range keys {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// printSummary prints the soak's summary and returns its exit status.
func printSummary(w io.Writer, in summaryInput) int {
	o, st, v := in.o, in.stats, in.v
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	race := "no"
	if o.race || raceEnabled {
		race = "yes"
	}
	p("\n== chaos soak: %s store (%s)", in.sp.Kind, in.sp.where())
	p("   %d workers × %d goroutines, %v (%v with the drain), seed %d, access tokens %v, workers with -race: %s",
		o.workers, o.goroutines, o.duration, in.end.Sub(in.start).Round(100*time.Millisecond), o.seed, o.lifetime, race)

	ev := in.led.eventTotals()
	p("token endpoint: %d requests: %d rotations, %d reuses (%d revoked a family), %d refused, %d faults",
		st.TokenRequests, st.Rotations, st.Reuses, st.FamiliesRevoked,
		st.InvalidGrant+st.InvalidRequest+st.InvalidClient+st.InvalidScope+st.UnsupportedGrantType-st.Reuses, st.Faults)
	p("  faults injected: %s", counted(ev.faults))
	p("  fault phases: %s", counted(in.phases))
	p("API (server): %d requests: 200 ×%d, 401 ×%d", st.APIRequests, st.Served200, st.Served401)

	t, incidents, kills, freezes := in.fl.totals()
	var failed int64
	for _, n := range t.Failed {
		failed += n
	}
	p("requests (workers; a killed worker's last half second is not counted): %d ok, %d failed", t.OK, failed)
	if failed > 0 {
		p("  failures: %s", counted(t.Failed))
		for _, k := range sortedKeys(t.FirstErr) {
			p("    first %s: %s", k, t.FirstErr[k])
		}
	}
	p("store faults injected (all workers): %s", storeFaultLine(t.Faults))
	p("engine log records: %s", counted(trimLog(t.Log)))

	var long int
	var longest time.Duration
	for _, d := range freezes {
		longest = max(longest, d)
		if lease := in.sp.lease(); lease > 0 && d >= lease*2/3 {
			long++
		}
	}
	freezeNote := ""
	if lease := in.sp.lease(); lease > 0 {
		freezeNote = fmt.Sprintf(", %d of them long enough to lose the %v lease", long, lease)
	}
	p("chaos: %d SIGKILLs, %d SIGSTOPs (longest %v%s)", kills, len(freezes), longest.Round(100*time.Millisecond), freezeNote)

	byKind := map[string]int{}
	for _, inc := range incidents {
		byKind[inc.kind]++
	}
	p("worker incidents: %s", counted(byKind))
	for _, inc := range incidents {
		p("  %s %s: worker %s %s", in.led.rel(inc.at), strings.ToUpper(inc.kind), inc.worker, inc.what)
		for _, l := range strings.Split(inc.excerpt, "\n") {
			if l != "" {
				p("      | %s", l)
			}
		}
	}

	logins := in.led.loginList()
	explained := len(v.losses) - v.unexplained()
	p("lineages: %d logins, %d lost (%d explained, %d library faults); %d later refusals of lost lineages' tokens",
		len(logins), len(v.losses), explained, v.unexplained(), v.afterLoss)
	patterns := map[string]int{}
	causes := map[string]int{}
	for _, ls := range v.losses {
		head := fmt.Sprintf("grant %d lost %s", ls.grant, in.led.rel(ls.at))
		switch ls.kind {
		case lostByReuse:
			head += fmt.Sprintf(" (pair %v presented again by worker %s", ls.reused, ls.reuser)
			if ls.afterwards > 0 {
				head += fmt.Sprintf("; %d more presentations of its spent tokens afterwards", ls.afterwards)
			}
			head += ")"
		case lostStranded:
			head += " (at the end the store lagged its newest pair)"
		case lostStalled:
			head += " (stalled)"
		case lostWrongGrant:
			head += " (at the end the store held another lineage)"
		}
		verdict := "EXPLAINED"
		if !ls.explained {
			verdict = "LIBRARY FAULT"
			if ls.pattern != "" {
				verdict += " " + ls.pattern
				patterns[ls.pattern]++
			}
		} else {
			causes[explanationKind(ls.cause)]++
		}
		p("  %s — %s: %s", head, verdict, ls.cause)
		for _, d := range ls.details {
			p("      %s", d)
		}
	}
	if len(causes) > 0 {
		p("  explained by: %s", counted(causes))
	}
	if len(patterns) > 0 {
		p("  library faults by pattern: %s", counted(patterns))
	}
	if cur := logins[len(logins)-1].grant; in.led.lossOfGrant(cur) == nil {
		newest, _ := in.led.progressOf(cur)
		p("  grant %d (the latest login) lives at the end; the store holds its newest pair %d/%d", cur, cur, newest)
	}
	for _, u := range v.unexpected {
		p("  UNEXPECTED %s", u)
	}

	var problems []string
	if n := v.unexplained(); n > 0 {
		problems = append(problems, fmt.Sprintf("%d lost lineages not explained", n))
	}
	if n := len(v.unexpected); n > 0 {
		problems = append(problems, fmt.Sprintf("%d unexpected token-endpoint answers", n))
	}
	for _, k := range sortedKeys(byKind) {
		problems = append(problems, fmt.Sprintf("%d worker %s", byKind[k], k))
	}
	if len(problems) > 0 {
		p("RESULT %s: FAIL: %s", in.sp.Kind, strings.Join(problems, ", "))
		return 1
	}
	p("RESULT %s: PASS: every lost lineage explained, no crash, no hang", in.sp.Kind)
	return 0
}

// explanationKind is the first words of an explanation, for counting.
func explanationKind(cause string) string {
	switch {
	case strings.Contains(cause, "injected fault"):
		return "answer dropped by a fault"
	case strings.Contains(cause, "SIGKILL"):
		return "receiver killed"
	case strings.Contains(cause, "was frozen"):
		return "holder frozen past its lease"
	case strings.Contains(cause, "without being frozen"):
		return "lease expired under load (no freeze; consider a longer -lease)"
	}
	return "other"
}

// trimLog drops the "refresh: " every engine message starts with.
func trimLog(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[strings.TrimPrefix(k, "refresh: ")] += v
	}
	return out
}

func storeFaultLine(fs storetest.FaultStats) string {
	var parts []string
	for op := storetest.OpLoad; op <= storetest.OpUnlock; op++ {
		var kinds []string
		for k := storetest.FaultNone; k <= storetest.FaultPanicAfter; k++ {
			if n := fs.Injected[op][k]; n > 0 {
				name := k.String()
				if k == storetest.FaultNone {
					name = "delay"
				}
				kinds = append(kinds, fmt.Sprintf("%s %d", name, n))
			}
		}
		if fs.Calls[op] == 0 {
			continue
		}
		if len(kinds) == 0 {
			kinds = []string{"none"}
		}
		parts = append(parts, fmt.Sprintf("%v (%d calls): %s", op, fs.Calls[op], strings.Join(kinds, ", ")))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}
