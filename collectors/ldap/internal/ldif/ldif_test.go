package ldif

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func readAll(t testing.TB, in string, maxRecord int) ([]*Record, []*SyntaxError) {
	r := NewReader(strings.NewReader(in))
	if maxRecord > 0 {
		r.MaxRecord = maxRecord
	}
	var recs []*Record
	var errs []*SyntaxError
	for i := 0; i < 100000; i++ {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return recs, errs
		}
		var se *SyntaxError
		if errors.As(err, &se) {
			errs = append(errs, se)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	t.Fatal("reader does not end")
	return nil, nil
}

func TestReader(t *testing.T) {
	in := "version: 1\n# comment\n#  folded comment\n\ndn: cn=a,dc=x\r\ncn: a\r\ndescription: folded\n  value\nuserPassword:: c2VjcmV0\n" +
		"# inner comment\n  continued comment\n: 422ce28f\n\n\n" +
		"dn:: Y249YixkYz14\nreqMod:: Og==\njpegPhoto:: /9j/\n\n" +
		"dn: cn=bad\nnot a line\n\n" +
		"dn: cn=url\nx:< file:///etc/passwd\n\n" +
		"cn: no dn\n\n" +
		"dn: cn=last\ncn: last"
	recs, errs := readAll(t, in, 0)
	if len(recs) != 3 || len(errs) != 3 {
		t.Fatalf("records %d, errors %d (%v)", len(recs), len(errs), errs)
	}
	a := recs[0]
	if a.DN != "cn=a,dc=x" || a.First("description") != "folded value" || a.First("USERPASSWORD") != "secret" || a.Line != 5 {
		t.Fatalf("record a: %+v", a)
	}
	if len(a.Attrs) != 4 || a.Attrs[3].Name != "" || string(a.Attrs[3].Value) != "422ce28f" {
		t.Fatalf("empty-named attribute: %+v", a.Attrs)
	}
	if b := recs[1]; b.DN != "cn=b,dc=x" || b.First("reqMod") != ":" || string(b.Values("jpegPhoto")[0]) != "\xff\xd8\xff" {
		t.Fatalf("record b: %+v", b)
	}
	if recs[2].DN != "cn=last" || recs[2].First("cn") != "last" {
		t.Fatalf("last record: %+v", recs[2])
	}
	for _, e := range errs {
		if strings.Contains(e.Sample, "passwd") {
			t.Errorf("sample shows a value: %q", e.Sample)
		}
	}
}

func TestReaderBounds(t *testing.T) {
	long := "dn: cn=big\ndescription: " + strings.Repeat("x", 5000) + "\n\ndn: cn=after\ncn: after\n"
	recs, errs := readAll(t, long, 1024)
	if len(recs) != 1 || recs[0].DN != "cn=after" || len(errs) != 1 {
		t.Fatalf("records %v errors %v", recs, errs)
	}
	folded := "dn: cn=big\ndescription: x\n" + strings.Repeat(" yyyyyyyyyy\n", 500) + "\ndn: cn=after\n"
	recs, errs = readAll(t, folded, 1024)
	if len(recs) != 1 || len(errs) != 1 {
		t.Fatalf("folded: records %v errors %v", recs, errs)
	}
}

func TestParseFragment(t *testing.T) {
	blob := "replace: userPassword\nuserPassword:: e1BC\n S0RG\n-\nreplace: modifiersname\nmodifiersname: cn=dm\n-\n\x00trailing junk"
	lines, err := ParseFragment([]byte(blob), 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range lines {
		got = append(got, l.Name+"="+string(l.Value))
	}
	want := "replace=userPassword userPassword={PBKDF -= replace=modifiersname modifiersname=cn=dm -="
	if strings.Join(got, " ") != want {
		t.Fatalf("got %q want %q", strings.Join(got, " "), want)
	}
	if _, err := ParseFragment([]byte("a: 1\nb: 2\nc: 3\n"), 2); err == nil {
		t.Fatal("line bound not enforced")
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte("dn: cn=a\ncn: a\n folded\nx:: Og==\n\n"))
	f.Add([]byte("version: 1\n\ndn:: Y249Yg==\n#c\n c\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		recs, _ := readAll(t, string(in), 512)
		for _, r := range recs {
			size := len(r.DN)
			for _, a := range r.Attrs {
				size += len(a.Value)
			}
			if size > 512+len(in) {
				t.Fatalf("record larger than input")
			}
		}
		_, _ = ParseFragment(in, 1000)
	})
}
