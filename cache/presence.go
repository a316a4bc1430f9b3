package cache

// presence is a sparse bitmap of block indexes believed to exist in the
// store. It costs one map entry per 64 blocks that hold any stored block.
type presence map[uint64]uint64

func (p presence) has(i uint64) bool { return p[i>>6]&(1<<(i&63)) != 0 }

func (p presence) set(i uint64) bool {
	w := p[i>>6]
	bit := uint64(1) << (i & 63)
	p[i>>6] = w | bit
	return w&bit == 0
}

func (p presence) clear(i uint64) bool {
	w, ok := p[i>>6]
	bit := uint64(1) << (i & 63)
	if !ok || w&bit == 0 {
		return false
	}
	if w &^= bit; w == 0 {
		delete(p, i>>6)
	} else {
		p[i>>6] = w
	}
	return true
}
