package main

import (
	apiextensionsopenapi "k8s.io/apiextensions-apiserver/pkg/generated/openapi"
	"k8s.io/kube-openapi/pkg/common"

	builtinopenapi "llmesh.io/apiserver/openapi"
)

// openAPIDefinitions merges the definitions generated at install time for the
// built-in types (openapi-gen over k8s.io/api and apimachinery) with apiextensions'.
// Server-side apply and the OpenAPI v2 and v3 documents are built from them.
func openAPIDefinitions(ref common.ReferenceCallback) map[string]common.OpenAPIDefinition {
	defs := builtinopenapi.GetOpenAPIDefinitions(ref)
	for name, def := range apiextensionsopenapi.GetOpenAPIDefinitions(ref) {
		defs[name] = def
	}
	return defs
}
