package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/token/tokenfile"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/registry/rest"
)

// tokenFile authenticates bearer tokens listed in a static token file, in the format
// of kube-apiserver's --token-auth-file. Unlike kube-apiserver it re-reads the file
// when its modification time or size changes, so tests can add tokens while it runs.
type tokenFile struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	current *tokenfile.TokenAuthenticator
}

func newTokenFile(path string) *tokenFile {
	return &tokenFile{path: path, current: tokenfile.New(nil)}
}

func (t *tokenFile) AuthenticateToken(ctx context.Context, token string) (*authenticator.Response, bool, error) {
	auth, err := t.load()
	if err != nil {
		return nil, false, err
	}
	resp, ok, err := auth.AuthenticateToken(ctx, token)
	if err != nil || !ok || t.path == "" {
		return resp, ok, err
	}
	// Extras (what kube-apiserver puts in a pod-bound service-account token's user
	// info: authentication.kubernetes.io/pod-name, pod-uid) come from PATH.extra, one
	// line per token: "token,key=value,key=value". The token file format has no room.
	extra := tokenExtras(t.path+".extra", token)
	if len(extra) == 0 {
		return resp, ok, err
	}
	info := resp.User
	resp.User = &user.DefaultInfo{Name: info.GetName(), UID: info.GetUID(), Groups: info.GetGroups(), Extra: extra}
	return resp, ok, err
}

// tokenExtras reads the extras of token from path (missing file: none).
func tokenExtras(path string, token string) map[string][]string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Split(strings.TrimSpace(line), ",")
		if len(fields) < 2 || fields[0] != token {
			continue
		}
		extra := map[string][]string{}
		for _, kv := range fields[1:] {
			if k, v, found := strings.Cut(kv, "="); found {
				extra[k] = append(extra[k], v)
			}
		}
		return extra
	}
	return nil
}

func (t *tokenFile) load() (*tokenfile.TokenAuthenticator, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.path == "" {
		return t.current, nil
	}
	info, err := os.Stat(t.path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	if info.ModTime().Equal(t.modTime) && info.Size() == t.size {
		return t.current, nil
	}
	auth, err := tokenfile.NewCSV(t.path)
	if err != nil {
		return nil, err
	}
	t.current, t.modTime, t.size = auth, info.ModTime(), info.Size()
	return auth, nil
}

// tokenReviewREST answers authentication.k8s.io/v1 TokenReviews from the token file.
type tokenReviewREST struct {
	tokens authenticator.Token
}

var (
	_ rest.Creater              = &tokenReviewREST{}
	_ rest.Scoper               = &tokenReviewREST{}
	_ rest.SingularNameProvider = &tokenReviewREST{}
)

func (r *tokenReviewREST) New() runtime.Object     { return &authenticationv1.TokenReview{} }
func (r *tokenReviewREST) Destroy()                {}
func (r *tokenReviewREST) NamespaceScoped() bool   { return false }
func (r *tokenReviewREST) GetSingularName() string { return "tokenreview" }

func (r *tokenReviewREST) Create(ctx context.Context, obj runtime.Object, createValidation rest.ValidateObjectFunc, _ *metav1.CreateOptions) (runtime.Object, error) {
	review, ok := obj.(*authenticationv1.TokenReview)
	if !ok {
		return nil, fmt.Errorf("not a TokenReview: %T", obj)
	}
	if createValidation != nil {
		if err := createValidation(ctx, obj.DeepCopyObject()); err != nil {
			return nil, err
		}
	}
	review.Status = authenticationv1.TokenReviewStatus{}
	if review.Spec.Token == "" {
		review.Status.Error = "token is empty"
		return review, nil
	}
	resp, ok, err := r.tokens.AuthenticateToken(ctx, review.Spec.Token)
	switch {
	case err != nil:
		review.Status.Error = err.Error()
	case !ok:
		review.Status.Error = "invalid bearer token"
	default:
		info := resp.User
		review.Status.Authenticated = true
		review.Status.Audiences = review.Spec.Audiences
		review.Status.User = authenticationv1.UserInfo{
			Username: info.GetName(),
			UID:      info.GetUID(),
			Groups:   append(info.GetGroups(), "system:authenticated"),
		}
		if extra := info.GetExtra(); len(extra) > 0 {
			review.Status.User.Extra = map[string]authenticationv1.ExtraValue{}
			for k, v := range extra {
				review.Status.User.Extra[k] = v
			}
		}
	}
	return review, nil
}
