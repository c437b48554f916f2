//go:build kms_azure

package main

import _ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
