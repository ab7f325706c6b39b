package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"slices"
	"testing"
)

// Fuzz targets for every decoder and the stream reader
// (docs/design.md#fuzz-every-decoder).
// Seeds are the known-answer vectors; the corpus lives in testdata/fuzz.
// Each target checks that the decoder never panics and that what it
// accepts re-encodes to the same bytes.

func addSeeds(f *testing.F) {
	for _, tc := range knownAnswers {
		f.Add(unhex(f, tc.hex))
	}
}

// fuzzDecoder runs one typed decoder on data, first forcing the type byte
// so the fuzzer explores the body rather than the type check.
func fuzzDecoder[T any, P interface {
	*T
	Message
}](f *testing.F, typ Type, decode func([]byte) (T, error)) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		msg := append([]byte{byte(typ)}, data...)
		if len(data) > 0 {
			msg = append([]byte{byte(typ)}, data[1:]...)
		}
		m, err := decode(msg)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Type != typ || de.Field == "" {
				t.Fatalf("rejection %v does not name type %v and a field", err, typ)
			}
			return
		}
		if enc := P(&m).Append(nil); !bytes.Equal(enc, msg) {
			t.Fatalf("accepted %x but re-encodes as %x", msg, enc)
		}
	})
}

func FuzzDecodeInitialInfo(f *testing.F) { fuzzDecoder(f, TypeInitialInfo, DecodeInitialInfo) }
func FuzzDecodeInfo(f *testing.F)        { fuzzDecoder(f, TypeInfo, DecodeInfo) }
func FuzzDecodeHealthRequest(f *testing.F) {
	fuzzDecoder(f, TypeHealthRequest, DecodeHealthRequest)
}
func FuzzDecodeHealthResponse(f *testing.F) {
	fuzzDecoder(f, TypeHealthResponse, DecodeHealthResponse)
}
func FuzzDecodeTargetedFrame(f *testing.F) { fuzzDecoder(f, TypeTargetedFrame, DecodeTargetedFrame) }
func FuzzDecodeBroadcastFrame(f *testing.F) {
	fuzzDecoder(f, TypeBroadcastFrame, DecodeBroadcastFrame)
}
func FuzzDecodeGroupFrame(f *testing.F)   { fuzzDecoder(f, TypeGroupFrame, DecodeGroupFrame) }
func FuzzDecodeLimitedFrame(f *testing.F) { fuzzDecoder(f, TypeLimitedFrame, DecodeLimitedFrame) }
func FuzzDecodeInfoPath(f *testing.F)     { fuzzDecoder(f, TypeInfoPath, DecodeInfoPath) }
func FuzzDecodeInfoBatch(f *testing.F)    { fuzzDecoder(f, TypeInfoBatch, DecodeInfoBatch) }
func FuzzDecodeAnnounceRequestFor(f *testing.F) {
	fuzzDecoder(f, TypeAnnounceRequestFor, DecodeAnnounceRequestFor)
}
func FuzzDecodeAnnounceRequest(f *testing.F) {
	fuzzDecoder(f, TypeAnnounceRequest, DecodeAnnounceRequest)
}
func FuzzDecodeHeartbeat(f *testing.F)   { fuzzDecoder(f, TypeHeartbeat, DecodeHeartbeat) }
func FuzzDecodeFeatures(f *testing.F)    { fuzzDecoder(f, TypeFeatures, DecodeFeatures) }
func FuzzDecodeGSOFrame(f *testing.F)    { fuzzDecoder(f, TypeGSOFrame, DecodeGSOFrame) }
func FuzzDecodeLinkFull(f *testing.F)    { fuzzDecoder(f, TypeLinkFull, DecodeLinkFull) }
func FuzzDecodeSignatures(f *testing.F)  { fuzzDecoder(f, TypeSignatures, DecodeSignatures) }
func FuzzDecodeCertificate(f *testing.F) { fuzzDecoder(f, TypeCertificate, DecodeCertificate) }
func FuzzDecodeRevocationList(f *testing.F) {
	fuzzDecoder(f, TypeRevocationList, DecodeRevocationList)
}
func FuzzDecodeHealthLinks(f *testing.F) {
	fuzzDecoder(f, TypeHealthLinks, DecodeHealthLinks)
}

// FuzzReader feeds arbitrary streams to Reader: it never panics, every
// message it returns is non-empty and no longer than MaxMessage, the
// messages plus their prefixes never exceed the input, and it ends with
// an error.
func FuzzReader(f *testing.F) {
	for _, tc := range knownAnswers {
		b, _ := AppendFrame(nil, unhex(f, tc.hex))
		f.Add(b)
	}
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		consumed := 0
		for {
			m, err := r.Next()
			if err != nil {
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrZeroLength) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			if len(m) == 0 || len(m) > MaxMessage {
				t.Fatalf("message of %d bytes", len(m))
			}
			consumed += 2 + len(m)
			if consumed > len(data) {
				t.Fatalf("read %d bytes from %d", consumed, len(data))
			}
			_, _ = Decode(m)
		}
	})
}

// FuzzInfoBatchReader: the entry-by-entry reader accepts exactly what
// DecodeInfoBatch accepts, with the same entries, and names the type and
// a field in every rejection.
func FuzzInfoBatchReader(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		msg := append([]byte{byte(TypeInfoBatch)}, data...)
		if len(data) > 0 {
			msg = append([]byte{byte(TypeInfoBatch)}, data[1:]...)
		}
		want, wantErr := DecodeInfoBatch(msg)
		var r InfoBatchReader
		var got []BatchEntry
		err := r.Reset(msg)
		for err == nil {
			e, ok, nerr := r.Next()
			if !ok {
				err = nerr
				break
			}
			e.Path = slices.Clone(e.Path) // the reader's scratch is reused
			got = append(got, e)
		}
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("reader error %v, DecodeInfoBatch error %v", err, wantErr)
		}
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Type != TypeInfoBatch || de.Field == "" {
				t.Fatalf("rejection %v does not name type 0x88 and a field", err)
			}
			return
		}
		if len(got) != len(want.Entries) {
			t.Fatalf("reader gave %d entries, DecodeInfoBatch %d", len(got), len(want.Entries))
		}
		for i := range got {
			if !reflect.DeepEqual(got[i], want.Entries[i]) {
				t.Fatalf("entry %d: reader %+v, DecodeInfoBatch %+v", i, got[i], want.Entries[i])
			}
		}
	})
}
