// Command s3blk-bench is the Go half of `make bench`; scripts/bench.sh
// drives it. It holds what is awkward in shell: the raw S3 ceiling, a
// request-counting proxy, the sparse-volume fixture for the scale test,
// small measuring helpers, and the BENCHMARKS.md report.
//
//	s3blk-bench ceiling put|get -bucket B -prefix P -size 1G   raw 1 MiB PUTs/GETs, prints MiB/s
//	s3blk-bench mkbucket B                                     create a bucket (ok if it exists)
//	s3blk-bench du -bucket B -prefix P                         "objects bytes" under a prefix
//	s3blk-bench rm -bucket B -prefix P                         delete every object under a prefix
//	s3blk-bench proxy -target URL -addr-file F                 count S3 requests in front of MinIO
//	s3blk-bench scale -url s3://B/P -blocks N                  store N sparse blocks in a volume
//	s3blk-bench gen SIZE                                       pseudo-random bytes to stdout
//	s3blk-bench survive ORIGINAL COPY                          MiB of COPY equal to ORIGINAL
//	s3blk-bench fio-iops FILE                                  IOPS from fio's JSON output
//	s3blk-bench report -results R -meta M -out BENCHMARKS.md   the report
//
// The S3 commands take credentials and the endpoint from the AWS
// environment (scripts/minio.sh prints it). Sizes take K, M, G, T suffixes
// (powers of 1024).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
)

var commands = map[string]func(args []string) error{
	"ceiling":  runCeiling,
	"mkbucket": runMkbucket,
	"du":       runDu,
	"rm":       runRm,
	"proxy":    runProxy,
	"scale":    runScale,
	"gen":      runGen,
	"survive":  runSurvive,
	"fio-iops": runFioIOPS,
	"report":   runReport,
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: s3blk-bench ceiling|mkbucket|du|rm|proxy|scale|gen|survive|fio-iops|report ... (see the package comment)")
		os.Exit(2)
	}
	if err := commands[os.Args[1]](os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "s3blk-bench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// parseSize parses a byte count with an optional K, M, G or T suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMGT", t[n-1]); i >= 0 {
			mult = int64(1) << (10 * (i + 1))
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q (want e.g. 256M or 1G)", s)
	}
	return v * mult, nil
}

// sizeValue is a flag.Value for sizes.
type sizeValue struct{ n *int64 }

func (v sizeValue) String() string {
	if v.n == nil {
		return "0"
	}
	return strconv.FormatInt(*v.n, 10)
}

func (v sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err == nil {
		*v.n = n
	}
	return err
}

func sizeFlag(fs *flag.FlagSet, name string, def int64, usage string) *int64 {
	n := def
	fs.Var(sizeValue{&n}, name, usage)
	return &n
}
