// Command llmesh-apiserver is the Kubernetes API server that llmesh's integration tests
// run against. It is the apiextensions-apiserver from k8s.io (CRDs with schema and CEL
// validation, server-side apply, watches, status subresources) with the built-in
// resources an operator needs installed on the same generic server, so that one etcd,
// one authentication chain and one admission chain serve them all.
//
// It is built in GOPATH mode from Debian's packaged Go sources by ../harness.sh; see
// docs/testing.md for what it serves and how it differs from a real cluster.
package main

import (
	"context"
	goflag "flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	apiextensionsserver "k8s.io/apiextensions-apiserver/pkg/apiserver"
	"k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	"k8s.io/apimachinery/pkg/util/wait"
	mutatingpolicy "k8s.io/apiserver/pkg/admission/plugin/policy/mutating"
	validatingpolicy "k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/authentication/request/bearertoken"
	"k8s.io/apiserver/pkg/authentication/request/union"
	x509request "k8s.io/apiserver/pkg/authentication/request/x509"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/util/openapi"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	restclient "k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

type flags struct {
	dataDir   string
	etcd      string
	tokenFile string
	port      int
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "llmesh-apiserver: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var f flags
	fs := pflag.NewFlagSet("llmesh-apiserver", pflag.ContinueOnError)
	fs.StringVar(&f.dataDir, "data-dir", "", "directory for the certificates and the kubeconfig this server writes (required)")
	fs.StringVar(&f.etcd, "etcd-servers", "http://127.0.0.1:2379", "etcd client URL")
	fs.StringVar(&f.tokenFile, "token-auth-file", "", "static token file (token,user,uid,\"group1,group2\"), re-read when it changes")
	fs.IntVar(&f.port, "secure-port", 0, "port to serve HTTPS on 127.0.0.1 (0: any free port)")
	klogFlags := goFlagSet()
	fs.AddGoFlagSet(klogFlags)
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if f.dataDir == "" {
		return fmt.Errorf("--data-dir is required")
	}

	pki, err := newPKI(f.dataDir)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	listener, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", f.port))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	port := listener.Addr().(*net.TCPAddr).Port
	// The server's own informers (namespaces for NamespaceLifecycle, webhook
	// configurations for the webhook plugins) reach it through this kubeconfig.
	selfKubeconfig := filepath.Join(f.dataDir, "self.kubeconfig")
	if err := pki.writeKubeconfig(selfKubeconfig, port); err != nil {
		return err
	}

	opts := options.NewCustomResourceDefinitionsServerOptions(os.Stdout, os.Stderr)
	if err := opts.ServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	ro := opts.RecommendedOptions
	ro.Etcd.StorageConfig.Transport.ServerList = []string{f.etcd}
	ro.SecureServing.Listener = listener
	ro.SecureServing.BindPort = port
	ro.SecureServing.BindAddress = net.IPv4(127, 0, 0, 1)
	ro.SecureServing.ServerCert.CertKey = genericoptions.CertKey{CertFile: pki.servingCert, KeyFile: pki.servingKey}
	// Authentication is set up below (client certificates + the token file);
	// authorisation allows every authenticated request, as there is no RBAC here.
	ro.Authentication = nil
	ro.Authorization = nil
	ro.CoreAPI.CoreAPIKubeconfigPath = selfKubeconfig
	ro.Features.EnablePriorityAndFairness = false
	// NamespaceLifecycle, MutatingAdmissionWebhook and ValidatingAdmissionWebhook stay
	// on; the admission policy plugins would need resources this server lacks.
	ro.Admission.DisablePlugins = []string{mutatingpolicy.PluginName, validatingpolicy.PluginName}
	if err := opts.Complete(); err != nil {
		return err
	}
	if err := opts.Validate(); err != nil {
		return err
	}

	config, err := opts.Config()
	if err != nil {
		return err
	}
	gc := config.GenericConfig
	tokens := newTokenFile(f.tokenFile)
	clientCA, err := dynamiccertificates.NewStaticCAContent("client-ca", pki.caPEM)
	if err != nil {
		return err
	}
	gc.SecureServing.ClientCA = clientCA
	gc.Authentication.Authenticator = union.New(
		x509request.NewDynamic(clientCA.VerifyOptions, x509request.CommonNameUserConversion),
		bearertoken.New(tokens),
	)

	defs := openapi.GetOpenAPIDefinitionsWithoutDisabledFeatures(openAPIDefinitions)
	namer := openapinamer.NewDefinitionNamer(apiextensionsserver.Scheme, clientgoscheme.Scheme)
	gc.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(defs, namer)
	gc.OpenAPIConfig.Info.Title = "llmesh test API server"
	gc.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(defs, namer)
	gc.OpenAPIV3Config.Info.Title = "llmesh test API server"

	builtinGetter := builtinRESTOptionsGetter(ro.Etcd, gc.ResourceTransformers, gc.StorageObjectCountTracker)

	completed := config.Complete()
	// apiextensions-apiserver normally runs behind kube-apiserver's aggregator and
	// turns its own /apis discovery off; standing alone, it must serve it.
	completed.GenericConfig.EnableDiscovery = true
	server, err := completed.New(genericapiserver.NewEmptyDelegate())
	if err != nil {
		return err
	}
	gs := server.GenericAPIServer
	if err := installBuiltins(gs, builtinGetter, tokens); err != nil {
		return fmt.Errorf("built-in APIs: %w", err)
	}
	publishCRDGroups(server.Informers.Apiextensions().V1().CustomResourceDefinitions(), gs.DiscoveryGroupManager)

	gs.AddPostStartHookOrDie("llmesh-default-namespaces", func(hc genericapiserver.PostStartHookContext) error {
		client, err := kubernetes.NewForConfig(hc.LoopbackClientConfig)
		if err != nil {
			return err
		}
		return createDefaultNamespaces(hc.Context, client)
	})
	gs.AddPostStartHookOrDie("llmesh-garbage-collector", func(hc genericapiserver.PostStartHookContext) error {
		gcLoop, err := newCollector(hc.LoopbackClientConfig)
		if err != nil {
			return err
		}
		go gcLoop.run(hc.Context)
		return nil
	})

	ctx := genericapiserver.SetupSignalContext()
	prepared := gs.PrepareRun()
	go announceWhenReady(ctx, gs.LoopbackClientConfig, pki, port, f.dataDir)
	return prepared.RunWithContext(ctx)
}

// announceWhenReady writes the kubeconfig that clients use once /readyz passes, so that
// its presence tells the harness script that the server is ready.
func announceWhenReady(ctx context.Context, loopback *restclient.Config, pki *pki, port int, dataDir string) {
	client, err := kubernetes.NewForConfig(loopback)
	if err != nil {
		klog.Fatalf("loopback client: %v", err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		status := 0
		client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).StatusCode(&status)
		return status == 200, nil
	})
	if err != nil {
		klog.Fatalf("server did not become ready: %v", err)
	}
	if err := pki.writeKubeconfig(filepath.Join(dataDir, "kubeconfig"), port); err != nil {
		klog.Fatalf("%v", err)
	}
	klog.Infof("ready: https://127.0.0.1:%d, kubeconfig %s", port, filepath.Join(dataDir, "kubeconfig"))
}

// goFlagSet holds klog's flags (-v and friends).
func goFlagSet() *goflag.FlagSet {
	fs := goflag.NewFlagSet("klog", goflag.ContinueOnError)
	klog.InitFlags(fs)
	return fs
}
