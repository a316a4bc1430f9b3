package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// The results file holds one record per line, tab-separated:
//
//	section  tool  metric  run  value
//
// value is a number, except for the metrics "na" (the row could not be
// measured; value says why) and "note" (free text shown beside the row).
// The meta file holds "key<TAB>value" lines; keys may repeat (setting,
// version, note) and keep their order.

// key names one measured quantity: a metric of a tool in a section.
type key struct{ section, tool, metric string }

// results is everything scripts/bench.sh recorded.
type results struct {
	values map[key][]float64
	na     map[[2]string]string   // {section, tool} -> reason
	notes  map[[2]string][]string // {section, tool} -> notes
	meta   []metaLine
}

type metaLine struct{ key, value string }

func newResults() *results {
	return &results{values: map[key][]float64{}, na: map[[2]string]string{}, notes: map[[2]string][]string{}}
}

// readResults parses the results file.
func (r *results) readResults(in io.Reader) error {
	sc := bufio.NewScanner(in)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, "\t", 5)
		if len(f) != 5 {
			return fmt.Errorf("results line %d: want 5 tab-separated fields: %q", n, line)
		}
		st := [2]string{f[0], f[1]}
		switch f[2] {
		case "na":
			r.na[st] = f[4]
		case "note":
			r.notes[st] = append(r.notes[st], f[4])
		default:
			v, err := strconv.ParseFloat(f[4], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("results line %d: %q is not a number", n, f[4])
			}
			k := key{f[0], f[1], f[2]}
			r.values[k] = append(r.values[k], v)
		}
	}
	return sc.Err()
}

// readMeta parses the meta file.
func (r *results) readMeta(in io.Reader) error {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "\t")
		if ok {
			r.meta = append(r.meta, metaLine{k, v})
		}
	}
	return sc.Err()
}

// metaValue returns the first value of a meta key, or "".
func (r *results) metaValue(k string) string {
	for _, m := range r.meta {
		if m.key == k {
			return m.value
		}
	}
	return ""
}

func (r *results) metaValues(k string) []string {
	var out []string
	for _, m := range r.meta {
		if m.key == k {
			out = append(out, m.value)
		}
	}
	return out
}

// summary is the median, minimum and maximum of a set of runs.
type summary struct {
	median, min, max float64
	n                int
}

func summarize(vs []float64) (summary, bool) {
	if len(vs) == 0 {
		return summary{}, false
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summary{median: m, min: s[0], max: s[len(s)-1], n: len(s)}, true
}

// get summarizes one quantity.
func (r *results) get(section, tool, metric string) (summary, bool) {
	return summarize(r.values[key{section, tool, metric}])
}

// median returns the median of one quantity, or NaN.
func (r *results) median(section, tool, metric string) float64 {
	s, ok := r.get(section, tool, metric)
	if !ok {
		return math.NaN()
	}
	return s.median
}

// why explains a missing quantity: the recorded n/a reason, or "not measured".
func (r *results) why(section, tool string) string {
	if s, ok := r.na[[2]string{section, tool}]; ok {
		return s
	}
	return "not measured"
}

// num formats a measurement with precision suited to its size.
func num(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "n/a"
	case a >= 100 || v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// ratio formats a/b as "1.23×".
func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "n/a"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64) + "×"
}
