module github.com/augen-project/augen

go 1.26.0

require (
	github.com/ProtonMail/go-crypto v1.5.2
	github.com/dsnet/compress v0.0.1
	github.com/google/go-tpm v0.9.8
	github.com/miekg/pkcs11 v1.1.2
	github.com/secure-systems-lab/go-securesystemslib v0.11.1
	github.com/spf13/pflag v1.1.0
	golang.org/x/term v0.48.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/cloudflare/circl v1.6.3 // indirect
	github.com/google/go-tpm-tools v0.4.11 // indirect
	golang.org/x/crypto v0.55.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
