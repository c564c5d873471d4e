package payload

import "google.golang.org/protobuf/encoding/protowire"

// Parsed manifests cost memory far beyond their bytes: an operation of two
// extents is about 16 bytes on the wire and about 340 bytes once parsed.
// So the operations and extents a manifest declares are counted on its
// bytes, before it is parsed, and a manifest whose parsed form would pass
// MaxManifestMemory is refused.
const (
	// MaxManifestMemory bounds the memory a parsed manifest may take:
	// about 140,000 operations of two extents. A 1 GiB full payload has
	// about 1,100 operations; a delta of a release's /usr tens of
	// thousands.
	MaxManifestMemory = 48 << 20
	opCost            = 200 // bytes per parsed operation (measured)
	extentCost        = 70  // bytes per parsed extent (measured)
)

// manifestCost counts the operations and extents in a serialized
// DeltaArchiveManifest (partition and noop operations, and every
// procedure's operations) without parsing it, and returns the memory its
// parsed form takes, as measured for the generated types. Malformed bytes
// count as far as they go: the parser refuses them afterwards.
func manifestCost(b []byte) uint64 {
	var cost uint64
	walk(b, func(num protowire.Number, v []byte) {
		switch num {
		case 1, 2: // partition_operations, noop_operations
			cost += operationCost(v)
		case 10: // procedures
			walk(v, func(num protowire.Number, v []byte) {
				if num == 2 { // operations
					cost += operationCost(v)
				}
			})
		}
	})
	return cost
}

func operationCost(op []byte) uint64 {
	cost := uint64(opCost)
	walk(op, func(num protowire.Number, _ []byte) {
		if num == 4 || num == 6 { // src_extents, dst_extents
			cost += extentCost
		}
	})
	return cost
}

// walk calls fn with every length-delimited field of the message b, and
// skips the others; it stops at the first malformed field.
func walk(b []byte, fn func(protowire.Number, []byte)) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return
			}
			fn(num, v)
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return
		}
		b = b[m:]
	}
}
