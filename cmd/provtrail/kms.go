package main

// KMS providers for identity keys given as key_ref (signer.LoadPrivateKey,
// through sigstore's kms registry). HashiCorp Vault / OpenBao transit and
// AWS KMS are linked into every build: together they add about 2.5 MB, the
// AWS SDK core being here already for CloudTrail. Google Cloud KMS and
// Azure Key Vault bring gRPC and the Azure SDK (about 27 MB more, which
// would double every agent's binary): they are linked with the build tags
// kms_gcp and kms_azure (kms_gcp.go, kms_azure.go), or reached through a
// sigstore-kms-<scheme> plugin on PATH.
import (
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)
