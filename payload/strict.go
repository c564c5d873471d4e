package payload

import (
	"bytes"
	"fmt"

	"github.com/augen-project/augen"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// strictUnmarshal parses b into m and rejects what the client's schema does
// not define: unknown fields, unknown enum values, missing required fields,
// and any encoding other than the canonical one (fields in number order,
// minimal varints, no repeats of optional fields). The last rule means that
// anything the Reader accepts re-marshals to exactly the bytes it read, so
// two programs can never read the same bytes differently.
func strictUnmarshal(b []byte, m proto.Message) error {
	if err := (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(b, m); err != nil {
		return err
	}
	if err := proto.CheckInitialized(m); err != nil {
		return err
	}
	// The client's C++ parser keeps unknown fields (and unknown enum
	// values, as unknown fields) and takes any valid encoding: refusing
	// them is augen's rule.
	if err := checkKnown(m.ProtoReflect(), string(m.ProtoReflect().Descriptor().Name())); err != nil {
		return fmt.Errorf("%w: %w", err, augen.Stricter("canonical-encoding"))
	}
	re, err := marshal.Marshal(m)
	if err != nil {
		return err
	}
	if !bytes.Equal(re, b) {
		return fmt.Errorf("not canonically encoded (fields out of order, repeated or padded): %w", augen.Stricter("canonical-encoding"))
	}
	return nil
}

// checkKnown walks a message and fails on the first unknown field or
// unknown enum value, naming unknown operation and procedure types as such.
func checkKnown(m protoreflect.Message, path string) error {
	if raw := m.GetUnknown(); len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return fmt.Errorf("%s: malformed unknown field", path)
		}
		if fd := m.Descriptor().Fields().ByNumber(num); fd != nil && fd.Enum() != nil && typ == protowire.VarintType {
			v, _ := protowire.ConsumeVarint(raw[n:])
			return fmt.Errorf("%s.%s: unknown %s value %d", path, fd.Name(), fd.Enum().Name(), int64(v))
		}
		return fmt.Errorf("%s: unknown field number %d", path, num)
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if ed := fd.Enum(); ed != nil && !fd.IsList() {
			// Go keeps out-of-range values of proto2 enums in the field
			// itself: check them against the schema.
			if ed.Values().ByNumber(v.Enum()) == nil {
				err = fmt.Errorf("%s.%s: unknown %s value %d", path, fd.Name(), ed.Name(), v.Enum())
				return false
			}
			return true
		}
		if fd.Message() == nil {
			return true
		}
		name := path + "." + string(fd.Name())
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = checkKnown(l.Get(i).Message(), fmt.Sprintf("%s[%d]", name, i))
			}
		} else {
			err = checkKnown(v.Message(), name)
		}
		return err == nil
	})
	return err
}
