package node

// routeIndex finds the slot of the route to a target: an open-addressing
// hash table of slot numbers, probed linearly, at most half full. It
// stores no keys: a cell's key is the key of the route in its slot, which
// the caller reads anyway, so a hit costs one memory access to the index
// and one to the route, where Go's map cost two into its own groups and
// a third to the route (at 1000 nodes the map's lookups were a tenth of
// the simulator's time, nearly all of it cache misses).
//
// The hash mixes the key with Config.IndexSeed, which the daemon draws in
// secret, so that a member announcing MACs of its choosing cannot aim them
// all at one run of cells.
type routeIndex struct {
	cells []int32 // slot+1; 0 is an empty cell
	count int
	shift uint8 // 64 less the log2 of len(cells)
	seed  uint64
}

// minIndexCells is the size of a routeIndex's first table.
const minIndexCells = 16

// home returns the cell where k's probe starts.
func (x *routeIndex) home(k macKey) int {
	h := uint64(k) ^ x.seed
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return int((h * 0x9e3779b97f4a7c15) >> x.shift)
}

// find returns the slot of k among slots and whether k is in the index.
func (x *routeIndex) find(k macKey, slots []route) (int32, bool) {
	if x.count == 0 {
		return 0, false
	}
	mask := len(x.cells) - 1
	for i := x.home(k); ; i = (i + 1) & mask {
		c := x.cells[i]
		if c == 0 {
			return 0, false
		}
		if slots[c-1].key == k {
			return c - 1, true
		}
	}
}

// insert records that k, which is not in the index, is in slot (its key
// need not be written there yet).
func (x *routeIndex) insert(k macKey, slot int32, slots []route) {
	if 2*(x.count+1) > len(x.cells) {
		x.grow(slots)
	}
	mask := len(x.cells) - 1
	i := x.home(k)
	for x.cells[i] != 0 {
		i = (i + 1) & mask
	}
	x.cells[i] = slot + 1
	x.count++
}

// grow doubles the table (or makes the first) and puts every cell back.
func (x *routeIndex) grow(slots []route) {
	old := x.cells
	size := max(minIndexCells, 2*len(old))
	x.cells = make([]int32, size)
	x.shift = uint8(64 - log2(size))
	mask := size - 1
	for _, c := range old {
		if c == 0 {
			continue
		}
		i := x.home(slots[c-1].key)
		for x.cells[i] != 0 {
			i = (i + 1) & mask
		}
		x.cells[i] = c
	}
}

// remove takes k out of the index, if it is there. The cells after it in
// its run move back where their probes reach them (no tombstones, so a
// table with many removals probes no longer than a fresh one).
func (x *routeIndex) remove(k macKey, slots []route) {
	if x.count == 0 {
		return
	}
	mask := len(x.cells) - 1
	i := x.home(k)
	for {
		c := x.cells[i]
		if c == 0 {
			return
		}
		if slots[c-1].key == k {
			break
		}
		i = (i + 1) & mask
	}
	x.count--
	// Backward shift: a later cell j of the run moves into the hole i
	// unless its home lies cyclically in (i, j].
	for j := (i + 1) & mask; x.cells[j] != 0; j = (j + 1) & mask {
		h := x.home(slots[x.cells[j]-1].key)
		if (j-h)&mask >= (j-i)&mask {
			x.cells[i] = x.cells[j]
			i = j
		}
	}
	x.cells[i] = 0
}

// log2 returns the base-2 logarithm of n, a power of two.
func log2(n int) int {
	b := 0
	for n > 1 {
		n >>= 1
		b++
	}
	return b
}
