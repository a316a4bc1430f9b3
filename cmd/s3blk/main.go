// Command s3blk puts a disk into S3: a FUSE file whose blocks are objects;
// and pipes streams to and from S3 (stream mode).
//
//	s3blk create s3://bucket/vol1 --size 100G [--block-size 1M]
//	s3blk mount  s3://bucket/vol1 /mnt/vol1
//	s3blk umount /mnt/vol1
//	s3blk info   s3://bucket/vol1
//	tar c /home | s3blk put s3://bucket/backups/home
//	s3blk get s3://bucket/backups/home | tar x
//	s3blk ls s3://bucket/backups/ ; s3blk rm s3://bucket/backups/home
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

var version = "dev"

type command struct {
	name, args, summary string
	run                 func(args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"create", "URL --size SIZE [--block-size SIZE]", "create a new volume", runCreate},
		{"mount", "URL MOUNTPOINT", "mount a volume; MOUNTPOINT/file is the disk", runMount},
		{"umount", "MOUNTPOINT", "unmount, waiting until every dirty block is stored", runUmount},
		{"info", "URL", "show a volume's geometry, stored blocks and lock holder", runInfo},
		{"put", "URL [-- COMMAND ARGS...]", "store stdin (or COMMAND's output) as a stream", runPut},
		{"get", "URL", "write a stream to stdout, verified", runGet},
		{"ls", "URL", "list the streams under URL, complete or INCOMPLETE", runLs},
		{"rm", "URL", "remove a stream (complete or INCOMPLETE)", runRm},
		{"passwd", "URL", "change an encrypted volume's passphrase (no block is rewritten)", runPasswd},
		{"verify", "URL", "check every stored block (or stream chunk); list the bad ones", runVerify},
		{"version", "", "print the version", func([]string) error { fmt.Println("s3blk", version); return nil }},
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "s3blk %s: a disk in S3 (block mode), and pipes to and from S3 (stream mode)\n\nUsage:\n", version)
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  s3blk %-7s %-37s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprint(os.Stderr, `
URLs are s3://bucket/prefix (credentials, region and endpoint from the AWS
environment: AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_S3, IMDS) or
file:///path for a local directory. Sizes take K, M, G, T suffixes (powers of 1024).
Run "s3blk COMMAND --help" for a command's flags.
`)
}

// usageError marks bad command-line input (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	name := os.Args[1]
	if name == "help" || name == "-h" || name == "--help" || name == "-help" {
		if len(os.Args) > 2 { // s3blk help mount == s3blk mount --help
			name = os.Args[2]
			os.Args = []string{os.Args[0], name, "--help"}
		} else {
			usage()
			return
		}
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		err := c.run(os.Args[2:])
		if err == nil {
			return
		}
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "s3blk %s: %s\n", name, oneLine(err))
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "s3blk: unknown command %q (try s3blk --help)\n", name)
	os.Exit(2)
}

type exitError struct {
	err  error
	code int
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
