package changelog

import (
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
)

// TestPersistentSearchControl checks the encoding against
// draft-ietf-ldapext-psearch-03: Control { controlType, criticality TRUE,
// controlValue OCTET STRING (SEQUENCE { changeTypes INTEGER, changesOnly
// BOOLEAN, returnECs BOOLEAN }) }.
func TestPersistentSearchControl(t *testing.T) {
	b := (&persistentSearchControl{}).Encode().Bytes()
	p, err := ber.DecodePacketErr(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Children) != 3 {
		t.Fatalf("control has %d parts", len(p.Children))
	}
	if oid, _ := p.Children[0].Value.(string); oid != "2.16.840.1.113730.3.4.3" {
		t.Fatalf("type %v", p.Children[0].Value)
	}
	if crit, _ := p.Children[1].Value.(bool); !crit {
		t.Fatal("not critical")
	}
	v, err := ber.DecodePacketErr(p.Children[2].Data.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if v.Tag != ber.TagSequence || len(v.Children) != 3 {
		t.Fatalf("value: %+v", v)
	}
	if ct, _ := v.Children[0].Value.(int64); ct != 15 {
		t.Fatalf("changeTypes %v, want 15 (add, delete, modify, modDN)", v.Children[0].Value)
	}
	if only, _ := v.Children[1].Value.(bool); !only {
		t.Fatal("changesOnly false")
	}
	if ecs, _ := v.Children[2].Value.(bool); ecs {
		t.Fatal("returnECs true")
	}
}
