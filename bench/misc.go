package main

import (
	"bufio"
	"bytes"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
)

// runGen writes SIZE pseudo-random (incompressible) bytes to stdout, faster
// than /dev/urandom, for streams too large to pre-generate.
func runGen(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: gen SIZE")
	}
	n, err := parseSize(args[0])
	if err != nil {
		return err
	}
	var seed [32]byte
	crand.Read(seed[:])
	src := rand.NewChaCha8(seed)
	buf := make([]byte, 1<<20)
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	for n > 0 {
		chunk := buf[:min(int64(len(buf)), n)]
		src.Read(chunk)
		if _, err := w.Write(chunk); err != nil {
			return err
		}
		n -= int64(len(chunk))
	}
	return w.Flush()
}

// survived counts the 1 MiB chunks of original that copy holds unchanged at
// the same offset. A short or missing copy just survives less.
func survived(original, copy io.Reader) (equal, total int64, err error) {
	a := make([]byte, 1<<20)
	b := make([]byte, 1<<20)
	copyDone := copy == nil
	for {
		na, errA := io.ReadFull(original, a)
		if na == 0 {
			if errA == io.EOF {
				return equal, total, nil
			}
			return equal, total, errA
		}
		total++
		nb := 0
		if !copyDone {
			var errB error
			nb, errB = io.ReadFull(copy, b[:na])
			if errB != nil && errB != io.ErrUnexpectedEOF && errB != io.EOF {
				copyDone = true // an I/O error in the copy: the rest is lost
				nb = 0
			} else if nb < na {
				copyDone = true
			}
		}
		if nb == na && bytes.Equal(a[:na], b[:na]) {
			equal++
		}
		if errA == io.ErrUnexpectedEOF {
			return equal, total, nil
		}
		if errA != nil {
			return equal, total, errA
		}
	}
}

// runSurvive prints "equal_MiB total_MiB": how much of ORIGINAL is found
// unchanged in COPY (0 if COPY does not exist).
func runSurvive(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: survive ORIGINAL COPY")
	}
	orig, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer orig.Close()
	var cp io.Reader
	if f, err := os.Open(args[1]); err == nil {
		defer f.Close()
		cp = f
	}
	equal, total, err := survived(orig, cp)
	if err != nil {
		return err
	}
	fmt.Println(equal, total)
	return nil
}

// fioIOPS sums read and write IOPS over the jobs of fio's JSON output
// (anything fio printed before the JSON is skipped).
func fioIOPS(data []byte) (float64, error) {
	i := bytes.IndexByte(data, '{')
	if i < 0 {
		return 0, errors.New("no JSON in fio output")
	}
	var out struct {
		Jobs []struct {
			Read  struct{ IOPS float64 } `json:"read"`
			Write struct{ IOPS float64 } `json:"write"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(data[i:], &out); err != nil {
		return 0, fmt.Errorf("fio output: %v", err)
	}
	if len(out.Jobs) == 0 {
		return 0, errors.New("fio output has no jobs")
	}
	var sum float64
	for _, j := range out.Jobs {
		sum += j.Read.IOPS + j.Write.IOPS
	}
	return sum, nil
}

func runFioIOPS(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: fio-iops FILE")
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	iops, err := fioIOPS(data)
	if err != nil {
		return err
	}
	fmt.Printf("%.0f\n", iops)
	return nil
}
