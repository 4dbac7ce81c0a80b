package source_test

import "strings"

// testNames names the fields as the program's settings do.
func testNames(key string) string {
	field, file := strings.CutSuffix(strings.TrimPrefix(key, "source."), ".file")
	n := map[string]string{
		"TenantID": "AZURE_TENANT_ID", "ClientID": "AZURE_CLIENT_ID", "ClientSecret": "AZURE_CLIENT_SECRET",
		"CertificatePath": "AZURE_CLIENT_CERTIFICATE_PATH", "CertificatePassword": "AZURE_CLIENT_CERTIFICATE_PASSWORD",
		"FederatedTokenFile": "AZURE_FEDERATED_TOKEN_FILE", "AuthorityHost": "AZURE_AUTHORITY_HOST", "AccessToken": "MDE_ACCESS_TOKEN",
		"Scope": "MDE_TOKEN_SCOPE", "BaseURL": "MDE_API_URL", "SASValidHours": "MDE_SAS_VALID_HOURS",
	}[field]
	if file && n != "" {
		n += "_FILE"
	}
	return n
}
