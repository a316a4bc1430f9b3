package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// ref points at the median of another row, for ratios.
type ref struct{ label, section, tool string }

// sectionSpec describes one workload of the main table.
type sectionSpec struct {
	id, title   string
	unit        string // of the "value" metric
	lowerBetter bool   // the value is a time
	tools       []string
	ceilings    []ref
	peers       []string // tools every s3blk row is compared with
}

// Tools as scripts/bench.sh names them.
const (
	toolS3blk = "s3blk"       // encryption and compression on (the default)
	toolPlain = "s3blk-plain" // --no-encryption (and --no-compression where it exists)
	toolLocal = "local"       // ext4 on a loop file on the local disk
)

var (
	rawPut   = ref{"raw PUT", "ceiling-put", "sdk"}
	rawGet   = ref{"raw GET", "ceiling-get", "sdk"}
	coldGet  = ref{"raw GET after drop_caches", "ceiling-get-cold", "sdk"}
	blockAll = []string{toolLocal, toolS3blk, toolPlain, "s3backer"}
	fioTools = []string{toolLocal, toolS3blk, "s3backer"}
	streams  = []string{toolS3blk, toolPlain, "aws", "rclone"}
)

func localRef(section string) ref { return ref{"local ext4", section, toolLocal} }

// sections is the main table, in order. Every row's primary metric is
// "value"; "rss" (peak RSS, MiB) and "stored" (MiB in the bucket) are shown
// where recorded.
var sections = []sectionSpec{
	{id: "ceiling-put", title: "Ceiling: raw S3 PUT, 1 MiB objects", unit: "MiB/s", tools: []string{"sdk"}},
	{id: "ceiling-get", title: "Ceiling: raw S3 GET, 1 MiB objects", unit: "MiB/s", tools: []string{"sdk"}},
	{id: "ceiling-get-cold", title: "Ceiling: raw S3 GET after `drop_caches` (MinIO reads its disk)", unit: "MiB/s", tools: []string{"sdk"}},
	{id: "write", title: "Block sequential write (`dd conv=fsync`)", unit: "MiB/s", tools: blockAll,
		ceilings: []ref{rawPut, localRef("write")}, peers: []string{"s3backer"}},
	{id: "read", title: "Block cold read (`cat` after remount)", unit: "MiB/s", tools: blockAll,
		ceilings: []ref{rawGet, coldGet, localRef("read")}, peers: []string{"s3backer"}},
	{id: "rsync", title: "`rsync -a` Go source tree + `sync`", unit: "s", lowerBetter: true, tools: fioTools,
		ceilings: []ref{localRef("rsync")}, peers: []string{"s3backer"}},
	{id: "fio-randread-warm", title: "fio 4 KiB random read, warm cache", unit: "IOPS", tools: fioTools,
		ceilings: []ref{localRef("fio-randread-warm")}, peers: []string{"s3backer"}},
	{id: "fio-randwrite-warm", title: "fio 4 KiB random write, warm cache", unit: "IOPS", tools: fioTools,
		ceilings: []ref{localRef("fio-randwrite-warm")}, peers: []string{"s3backer"}},
	{id: "fio-randread-cold", title: "fio 4 KiB random read, cold cache", unit: "IOPS", tools: fioTools,
		ceilings: []ref{localRef("fio-randread-cold")}, peers: []string{"s3backer"}},
	{id: "fio-randwrite-cold", title: "fio 4 KiB random write, cold cache", unit: "IOPS", tools: fioTools,
		ceilings: []ref{localRef("fio-randwrite-cold")}, peers: []string{"s3backer"}},
	{id: "put", title: "Stream put (stdin to S3)", unit: "MiB/s", tools: streams,
		ceilings: []ref{rawPut}, peers: []string{"aws", "rclone"}},
	{id: "get", title: "Stream get (S3 to stdout)", unit: "MiB/s", tools: streams,
		ceilings: []ref{rawGet}, peers: []string{"aws", "rclone"}},
}

// toolLabel is how a tool is shown in the tables; a "label:TOOL" meta
// line overrides it.
var toolLabel = map[string]string{
	"sdk":      "aws-sdk-go-v2",
	toolLocal:  "local ext4 (no FUSE, no S3)",
	toolS3blk:  "**s3blk** (encrypted + compressed)",
	toolPlain:  "s3blk plain (no encryption, no compression)",
	"s3backer": "s3backer",
	"aws":      "aws s3 cp",
	"rclone":   "rclone rcat / cat",
}

func (r *results) label(tool string) string {
	if l := r.metaValue("label:" + tool); l != "" {
		return l
	}
	if l, ok := toolLabel[tool]; ok {
		return l
	}
	return tool
}

func isS3blk(tool string) bool { return strings.HasPrefix(tool, toolS3blk) }

// span formats "min–max" of a summary with more than one run.
func span(s summary) string {
	if s.n < 2 {
		return "(1 run)"
	}
	return num(s.min) + "–" + num(s.max)
}

// mainTable renders the results of every workload.
func (r *results) mainTable(b *strings.Builder) {
	b.WriteString("| Workload | Tool | Median | Min–max | Peak RSS (MiB) | vs ceiling | vs peers | Notes |\n")
	b.WriteString("|---|---|---:|---|---:|---|---|---|\n")
	for _, sec := range sections {
		for _, tool := range sec.tools {
			s, ok := r.get(sec.id, tool, "value")
			if !ok {
				fmt.Fprintf(b, "| %s | %s | n/a | | | | | %s |\n", sec.title, r.label(tool), r.why(sec.id, tool))
				continue
			}
			rss := ""
			if m, ok := r.get(sec.id, tool, "rss"); ok {
				rss = num(m.median)
			}
			var ceil, peers []string
			for _, c := range sec.ceilings {
				if c.section == sec.id && c.tool == tool {
					continue
				}
				ceil = append(ceil, r.ratioText(s.median, c, sec.lowerBetter))
			}
			if isS3blk(tool) {
				for _, p := range sec.peers {
					peers = append(peers, r.ratioText(s.median, ref{p, sec.id, p}, sec.lowerBetter))
				}
			}
			notes := r.notes[[2]string{sec.id, tool}]
			if st, ok := r.get(sec.id, tool, "stored"); ok {
				n := "in the bucket when dd returned: " + num(st.median) + " MiB"
				if st.n > 1 {
					n += " (" + span(st) + ")"
				}
				notes = append([]string{n}, notes...)
			}
			fmt.Fprintf(b, "| %s | %s | %s %s | %s | %s | %s | %s | %s |\n", sec.title, r.label(tool),
				num(s.median), sec.unit, span(s), rss, strings.Join(ceil, ", "), strings.Join(peers, ", "), strings.Join(notes, "; "))
		}
	}
}

// ratioText compares value with the median of c: "0.85× raw PUT", or for
// times "0.70× s3backer's time".
func (r *results) ratioText(value float64, c ref, lowerBetter bool) string {
	other := r.median(c.section, c.tool, "value")
	if math.IsNaN(other) {
		return "n/a vs " + c.label
	}
	if lowerBetter {
		return ratio(value, other) + " " + c.label + "'s time"
	}
	return ratio(value, other) + " " + c.label
}

// target is one of the goals, measured.
type target struct {
	name     string
	measured string
	goal     string
	met      *bool // nil: could not be measured
}

func check(ok bool) *bool { return &ok }

func (r *results) targets() []target {
	var ts []target
	med := r.median
	add := func(name, goal string, value float64, measured string, ok bool) {
		t := target{name: name, goal: goal, measured: measured}
		if !math.IsNaN(value) {
			t.met = check(ok)
		}
		ts = append(ts, t)
	}
	cmp := func(name string, a, b float64, goal float64, atMost bool, what string) {
		v := a / b
		g := "≥ " + strconv.FormatFloat(goal, 'f', 2, 64) + "× " + what
		ok := v >= goal
		if atMost {
			g = "≤ " + strconv.FormatFloat(goal, 'f', 2, 64) + "× " + what
			ok = v <= goal
		}
		add(name, g, v, ratio(a, b), ok)
	}

	w, rd := med("write", toolS3blk, "value"), med("read", toolS3blk, "value")
	cmp("Block write with a durable fsync vs raw PUT", w, med("ceiling-put", "sdk", "value"), 0.8, false, "raw PUT")
	cmp("Block write vs s3backer (whose fsync stores nothing)", w, med("write", "s3backer", "value"), 1.8, false, "s3backer")
	cmp("Cold read vs raw GET", rd, med("ceiling-get", "sdk", "value"), 0.8, false, "raw GET")
	cmp("Cold read vs raw GET after drop_caches (the same cold start)", rd, med("ceiling-get-cold", "sdk", "value"), 0.8, false, "cold raw GET")
	cmp("rsync + durable sync, time vs s3backer's", med("rsync", toolS3blk, "value"), med("rsync", "s3backer", "value"), 0.8, true, "s3backer's time")
	for _, s := range []struct{ id, what string }{{"write", "block write"}, {"read", "cold read"}, {"put", "stream put"}, {"get", "stream get"}} {
		cmp("Encrypted + compressed vs plain: "+s.what, med(s.id, toolS3blk, "value"), med(s.id, toolPlain, "value"), 0.9, false, "plain")
	}
	for _, dir := range []string{"put", "get"} {
		best, bestName := math.NaN(), ""
		low, lowName := math.NaN(), ""
		for _, p := range []string{"aws", "rclone"} {
			if v := med(dir, p, "value"); !math.IsNaN(v) && (math.IsNaN(best) || v > best) {
				best, bestName = v, p
			}
			if v := med(dir, p, "rss"); !math.IsNaN(v) && (math.IsNaN(low) || v < low) {
				low, lowName = v, p
			}
		}
		cmp("Stream "+dir+" vs the best peer ("+orNone(bestName)+")", med(dir, toolS3blk, "value"), best, 1.2, false, "best peer")
		rss := med(dir, toolS3blk, "rss")
		both := math.NaN() // NaN unless both are measured
		if !math.IsNaN(rss) && !math.IsNaN(low) {
			both = rss
		}
		add("Stream "+dir+" peak RSS vs the lowest peer's ("+orNone(lowName)+")", "≤ "+num(low)+" MiB",
			both, num(rss)+" MiB", rss <= low)
	}
	cache, _ := strconv.ParseFloat(r.metaValue("cache_mib"), 64)
	if s, ok := r.get("write", toolS3blk, "rss"); ok && cache > 0 {
		add("Daemon peak RSS during block write (highest run)", "≤ cache + 64 = "+num(cache+64)+" MiB",
			s.max, num(s.max)+" MiB", s.max <= cache+64)
	} else {
		add("Daemon peak RSS during block write (highest run)", "≤ cache + 64 MiB", math.NaN(), "n/a", false)
	}
	for _, dir := range []string{"put", "get"} {
		small, large := med("mem-"+dir, toolS3blk, "rss_small"), med("mem-"+dir, toolS3blk, "rss_large")
		name := "Stream " + dir + " RSS is flat: " + r.metaValue("mem_large") + " vs " + r.metaValue("mem_small") + " stream"
		add(name, "≤ 1.10× the small stream's", large/small,
			num(small)+" → "+num(large)+" MiB ("+ratio(large, small)+")", large <= 1.1*small)
	}
	if s, ok := r.get("crash", toolS3blk, "lost"); ok {
		add("Crash after `dd conv=fsync`: s3blk loses nothing (worst run)", "0 MiB lost", s.max, num(s.max)+" MiB lost", s.max == 0)
	} else {
		add("Crash after `dd conv=fsync`: s3blk loses nothing (worst run)", "0 MiB lost", math.NaN(), "n/a", false)
	}
	return ts
}

func orNone(s string) string {
	if s == "" {
		return "none measured"
	}
	return s
}

func (r *results) targetTable(b *strings.Builder) {
	b.WriteString("| Target | Measured | Goal | Status |\n|---|---:|---|---|\n")
	for _, t := range r.targets() {
		status := "n/a"
		switch {
		case t.met == nil:
		case *t.met:
			status = "met"
		default:
			status = "**not met**"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", t.name, t.measured, t.goal, status)
	}
}

// memoryTable lists every peak RSS side by side.
func (r *results) memoryTable(b *strings.Builder) {
	b.WriteString("| Process | Workload | Peak RSS (MiB), median | Min–max |\n|---|---|---:|---|\n")
	row := func(proc, work string, section, tool, metric string) {
		s, ok := r.get(section, tool, metric)
		if !ok {
			fmt.Fprintf(b, "| %s | %s | n/a | %s |\n", proc, work, r.why(section, tool))
			return
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", proc, work, num(s.median), span(s))
	}
	cache := r.metaValue("cache_mib")
	for _, t := range []string{toolS3blk, toolPlain, "s3backer"} {
		row(r.label(t)+" daemon", "block write (cache "+cache+" MiB)", "write", t, "rss")
	}
	for _, dir := range []string{"put", "get"} {
		for _, t := range streams {
			row(r.label(t)+" "+dir, r.metaValue("size")+" stream", dir, t, "rss")
		}
		row(r.label(toolS3blk)+" "+dir, r.metaValue("mem_small")+" stream (memory test, from a generator)", "mem-"+dir, toolS3blk, "rss_small")
		row(r.label(toolS3blk)+" "+dir, r.metaValue("mem_large")+" stream (memory test, from a generator)", "mem-"+dir, toolS3blk, "rss_large")
	}
}

// scaleTable shows the sparse-volume mount.
func (r *results) scaleTable(b *strings.Builder) {
	if reason, ok := r.na[[2]string{"scale", toolS3blk}]; ok {
		fmt.Fprintf(b, "n/a: %s\n", reason)
		return
	}
	b.WriteString("| Quantity | Median | Min–max |\n|---|---:|---|\n")
	for _, q := range []struct{ metric, what string }{
		{"blocks", "blocks stored in the volume"},
		{"object_bytes", "bytes per block object"},
		{"fill_seconds", "seconds to store them (helper, 32 in flight)"},
		{"mount_seconds", "`s3blk mount` returns (s)"},
		{"listing_seconds", "block listing done, `listing_done 1` (s)"},
		{"known_blocks", "`known_blocks` after the listing"},
		{"rss", "daemon peak RSS after the listing (MiB)"},
	} {
		s, ok := r.get("scale", toolS3blk, q.metric)
		if !ok {
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %s |\n", q.what, num(s.median), span(s))
	}
	for _, n := range r.notes[[2]string{"scale", toolS3blk}] {
		fmt.Fprintf(b, "\n%s\n", n)
	}
}

var requestClasses = []string{"PUT", "GET", "HEAD", "DELETE", "LIST", "POST", "OTHER"}

// requestTable shows requests per GiB, counted by the proxy.
func (r *results) requestTable(b *strings.Builder) {
	b.WriteString("| Tool | Phase | " + strings.Join(requestClasses, " | ") + " | Total |\n")
	b.WriteString("|---|---|" + strings.Repeat("---:|", len(requestClasses)+1) + "\n")
	for _, tool := range []string{toolS3blk, "s3backer"} {
		if reason, ok := r.na[[2]string{"requests", tool}]; ok {
			fmt.Fprintf(b, "| %s | | n/a: %s |%s\n", r.label(tool), reason, strings.Repeat(" |", len(requestClasses)))
			continue
		}
		for _, phase := range []struct{ id, what string }{
			{"write", "per GiB written (mount, mkfs, dd, umount)"},
			{"read", "per GiB read cold (mount, cat, umount)"},
		} {
			var cells []string
			total := 0.0
			for _, c := range requestClasses {
				v := r.median("requests", tool, phase.id+"_"+c)
				cells = append(cells, num(v))
				if !math.IsNaN(v) {
					total += v
				}
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s |\n", r.label(tool), phase.what, strings.Join(cells, " | "), num(total))
		}
	}
}

// crashTable shows how much of the file survived a kill -9 after fsync.
func (r *results) crashTable(b *strings.Builder) {
	b.WriteString("| Tool | MiB of the file intact after remount (median) | Min–max | Lost (worst run) | Notes |\n|---|---:|---|---:|---|\n")
	for _, tool := range []string{toolS3blk, "s3backer"} {
		s, ok := r.get("crash", tool, "survived")
		if !ok {
			fmt.Fprintf(b, "| %s | n/a | | | %s |\n", r.label(tool), r.why("crash", tool))
			continue
		}
		lost, _ := r.get("crash", tool, "lost")
		total := r.median("crash", tool, "total")
		fmt.Fprintf(b, "| %s | %s of %s | %s | %s MiB | %s |\n", r.label(tool), num(s.median), num(total), span(s), num(lost.max),
			strings.Join(r.notes[[2]string{"crash", tool}], "; "))
	}
}

// render writes the whole BENCHMARKS.md.
func (r *results) render() string {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Generated by `make bench` (scripts/bench.sh); do not edit by hand.\n\n")
	for _, k := range []struct{ key, what string }{
		{"date", "Date"}, {"machine", "Machine"}, {"size", "Size (BENCH_SIZE)"}, {"runs", "Runs per workload and tool"},
	} {
		if v := r.metaValue(k.key); v != "" {
			fmt.Fprintf(&b, "- **%s:** %s\n", k.what, v)
		}
	}
	if s := r.metaValues("setting"); len(s) > 0 {
		b.WriteString("- **Settings:**\n")
		for _, v := range s {
			fmt.Fprintf(&b, "  - %s\n", v)
		}
	}
	b.WriteString("\nMiB/s are MiB of payload per second of wall time; ratios are of medians. " +
		"The machine is shared and noisy: compare ratios within one run, not absolute numbers across runs.\n")

	b.WriteString("\n## Targets (issue 6)\n\n")
	r.targetTable(&b)
	b.WriteString("\nWhy each unmet target is where it is: README.md, \"Where the targets stand\".\n")
	b.WriteString("\n## Results\n\n")
	r.mainTable(&b)
	b.WriteString("\n## Memory\n\n")
	r.memoryTable(&b)
	b.WriteString("\n## Scale: a sparse 1 TiB volume\n\n")
	r.scaleTable(&b)
	b.WriteString("\n## Requests (what a user pays), counted by a proxy in front of MinIO\n\n")
	r.requestTable(&b)
	b.WriteString("\n## Crash: `kill -9` of the daemon right after `dd conv=fsync` returns\n\n")
	r.crashTable(&b)
	if v := r.metaValues("version"); len(v) > 0 {
		b.WriteString("\n## Versions\n\n")
		for _, s := range v {
			fmt.Fprintf(&b, "- %s\n", s)
		}
	}
	if n := r.metaValues("note"); len(n) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, s := range n {
			fmt.Fprintf(&b, "- %s\n", s)
		}
	}
	return b.String()
}

func runReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	resultsFile := fs.String("results", "", "results file (TSV)")
	metaFile := fs.String("meta", "", "meta file (TSV)")
	out := fs.String("out", "BENCHMARKS.md", "where to write the report")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *resultsFile == "" || *metaFile == "" {
		return errors.New("need -results and -meta")
	}
	r := newResults()
	for _, f := range []struct {
		name string
		read func(*os.File) error
	}{
		{*resultsFile, func(f *os.File) error { return r.readResults(f) }},
		{*metaFile, func(f *os.File) error { return r.readMeta(f) }},
	} {
		fh, err := os.Open(f.name)
		if err != nil {
			return err
		}
		err = f.read(fh)
		fh.Close()
		if err != nil {
			return err
		}
	}
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, []byte(r.render()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, *out)
}
