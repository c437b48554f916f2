//go:build kms_gcp

package main

import _ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
