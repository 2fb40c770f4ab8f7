package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// addDefaulters registers the defaults kube-apiserver applies that clients (and the
// admission webhook plugins) rely on. Upstream's generated defaulters live in
// k8s.io/kubernetes, which is not packaged, so these are written out here.
func addDefaulters(scheme *runtime.Scheme) {
	scheme.AddTypeDefaultingFunc(&corev1.Secret{}, func(obj interface{}) {
		if s := obj.(*corev1.Secret); s.Type == "" {
			s.Type = corev1.SecretTypeOpaque
		}
	})
	scheme.AddTypeDefaultingFunc(&corev1.Pod{}, func(obj interface{}) { defaultPodSpec(&obj.(*corev1.Pod).Spec) })
	scheme.AddTypeDefaultingFunc(&corev1.Service{}, func(obj interface{}) { defaultService(obj.(*corev1.Service)) })
	scheme.AddTypeDefaultingFunc(&admissionregistrationv1.MutatingWebhookConfiguration{}, func(obj interface{}) {
		for i := range obj.(*admissionregistrationv1.MutatingWebhookConfiguration).Webhooks {
			w := &obj.(*admissionregistrationv1.MutatingWebhookConfiguration).Webhooks[i]
			defaultWebhook(&w.FailurePolicy, &w.MatchPolicy, &w.NamespaceSelector, &w.ObjectSelector, &w.TimeoutSeconds, w.Rules, &w.ClientConfig)
			if w.ReinvocationPolicy == nil {
				never := admissionregistrationv1.NeverReinvocationPolicy
				w.ReinvocationPolicy = &never
			}
		}
	})
	scheme.AddTypeDefaultingFunc(&admissionregistrationv1.ValidatingWebhookConfiguration{}, func(obj interface{}) {
		for i := range obj.(*admissionregistrationv1.ValidatingWebhookConfiguration).Webhooks {
			w := &obj.(*admissionregistrationv1.ValidatingWebhookConfiguration).Webhooks[i]
			defaultWebhook(&w.FailurePolicy, &w.MatchPolicy, &w.NamespaceSelector, &w.ObjectSelector, &w.TimeoutSeconds, w.Rules, &w.ClientConfig)
		}
	})
}

// defaultWebhook applies upstream's webhook defaults. Without them an unset selector
// matches nothing and the webhook never fires.
func defaultWebhook(failure **admissionregistrationv1.FailurePolicyType, match **admissionregistrationv1.MatchPolicyType,
	nsSelector, objSelector **metav1.LabelSelector, timeout **int32, rules []admissionregistrationv1.RuleWithOperations,
	client *admissionregistrationv1.WebhookClientConfig) {
	if *failure == nil {
		fail := admissionregistrationv1.Fail
		*failure = &fail
	}
	if *match == nil {
		equivalent := admissionregistrationv1.Equivalent
		*match = &equivalent
	}
	if *nsSelector == nil {
		*nsSelector = &metav1.LabelSelector{}
	}
	if *objSelector == nil {
		*objSelector = &metav1.LabelSelector{}
	}
	if *timeout == nil {
		ten := int32(10)
		*timeout = &ten
	}
	for i := range rules {
		if rules[i].Scope == nil {
			all := admissionregistrationv1.AllScopes
			rules[i].Scope = &all
		}
	}
	if client.Service != nil && client.Service.Port == nil {
		port := int32(443)
		client.Service.Port = &port
	}
}

func defaultPodSpec(spec *corev1.PodSpec) {
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = corev1.RestartPolicyAlways
	}
	if spec.DNSPolicy == "" {
		spec.DNSPolicy = corev1.DNSClusterFirst
	}
	if spec.SchedulerName == "" {
		spec.SchedulerName = corev1.DefaultSchedulerName
	}
	if spec.TerminationGracePeriodSeconds == nil {
		grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
		spec.TerminationGracePeriodSeconds = &grace
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	for _, containers := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range containers {
			c := &containers[i]
			if c.TerminationMessagePath == "" {
				c.TerminationMessagePath = corev1.TerminationMessagePathDefault
			}
			if c.TerminationMessagePolicy == "" {
				c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
			}
			if c.ImagePullPolicy == "" {
				c.ImagePullPolicy = corev1.PullIfNotPresent
				if !strings.Contains(c.Image[strings.LastIndex(c.Image, "/")+1:], ":") || strings.HasSuffix(c.Image, ":latest") {
					c.ImagePullPolicy = corev1.PullAlways
				}
			}
			for j := range c.Ports {
				if c.Ports[j].Protocol == "" {
					c.Ports[j].Protocol = corev1.ProtocolTCP
				}
			}
		}
	}
}

func defaultService(svc *corev1.Service) {
	if svc.Spec.Type == "" {
		svc.Spec.Type = corev1.ServiceTypeClusterIP
	}
	if svc.Spec.SessionAffinity == "" {
		svc.Spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort.IntVal == 0 && p.TargetPort.StrVal == "" {
			p.TargetPort.IntVal = p.Port
		}
	}
}

func prepareNamespace(obj, old runtime.Object) {
	ns := obj.(*corev1.Namespace)
	// Every namespace carries its name as a label, for namespace selectors.
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[corev1.LabelMetadataName] = ns.Name
	if old == nil {
		ns.Status.Phase = corev1.NamespaceActive
		if len(ns.Spec.Finalizers) == 0 {
			ns.Spec.Finalizers = []corev1.FinalizerName{corev1.FinalizerKubernetes}
		}
		return
	}
	// spec.finalizers changes only through namespaces/finalize, as upstream.
	ns.Spec.Finalizers = old.(*corev1.Namespace).Spec.Finalizers
}

// prepareSecret folds stringData into data, as kube-apiserver does when it converts a
// Secret to its internal form.
func prepareSecret(obj, _ runtime.Object) {
	s := obj.(*corev1.Secret)
	if len(s.StringData) == 0 {
		return
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	for k, v := range s.StringData {
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
}

func preparePod(obj, old runtime.Object) {
	if old == nil {
		obj.(*corev1.Pod).Status.Phase = corev1.PodPending
	}
}

func validatePod(obj runtime.Object) field.ErrorList {
	pod := obj.(*corev1.Pod)
	var errs field.ErrorList
	if len(pod.Spec.Containers) == 0 {
		errs = append(errs, field.Required(field.NewPath("spec", "containers"), "a pod needs at least one container"))
	}
	for i, c := range pod.Spec.Containers {
		if c.Name == "" {
			errs = append(errs, field.Required(field.NewPath("spec", "containers").Index(i).Child("name"), ""))
		}
		if c.Image == "" {
			errs = append(errs, field.Required(field.NewPath("spec", "containers").Index(i).Child("image"), ""))
		}
	}
	return errs
}

func validateWebhookConfiguration(obj runtime.Object) field.ErrorList {
	type hook struct {
		name     string
		client   admissionregistrationv1.WebhookClientConfig
		effects  *admissionregistrationv1.SideEffectClass
		versions []string
	}
	var hooks []hook
	switch c := obj.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		for _, w := range c.Webhooks {
			hooks = append(hooks, hook{w.Name, w.ClientConfig, w.SideEffects, w.AdmissionReviewVersions})
		}
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		for _, w := range c.Webhooks {
			hooks = append(hooks, hook{w.Name, w.ClientConfig, w.SideEffects, w.AdmissionReviewVersions})
		}
	}
	var errs field.ErrorList
	for i, h := range hooks {
		path := field.NewPath("webhooks").Index(i)
		if h.name == "" {
			errs = append(errs, field.Required(path.Child("name"), ""))
		}
		if (h.client.URL == nil) == (h.client.Service == nil) {
			errs = append(errs, field.Required(path.Child("clientConfig"), "exactly one of url or service is required"))
		}
		if h.effects == nil || (*h.effects != admissionregistrationv1.SideEffectClassNone && *h.effects != admissionregistrationv1.SideEffectClassNoneOnDryRun) {
			errs = append(errs, field.NotSupported(path.Child("sideEffects"), h.effects, []string{"None", "NoneOnDryRun"}))
		}
		if len(h.versions) == 0 {
			errs = append(errs, field.Required(path.Child("admissionReviewVersions"), "v1 or v1beta1"))
		}
	}
	return errs
}

// namespaceREST deletes a namespace the way kube-apiserver does: while spec.finalizers
// is not empty it is only marked Terminating; the garbage collector then deletes its
// contents and finalizes it (see gc.go).
type namespaceREST struct {
	resourceREST
}

func (r *namespaceREST) Delete(ctx context.Context, name string, deleteValidation rest.ValidateObjectFunc, options *metav1.DeleteOptions) (runtime.Object, bool, error) {
	obj, err := r.Store.Get(ctx, name, &metav1.GetOptions{})
	if err != nil {
		return nil, false, err
	}
	ns := obj.(*corev1.Namespace)
	if len(ns.Spec.Finalizers) == 0 {
		return r.Store.Delete(ctx, name, deleteValidation, options)
	}
	if options == nil {
		options = &metav1.DeleteOptions{}
	}
	var preconditions *storage.Preconditions
	if p := options.Preconditions; p != nil {
		preconditions = &storage.Preconditions{UID: p.UID, ResourceVersion: p.ResourceVersion}
	}
	key, err := r.Store.KeyFunc(ctx, name)
	if err != nil {
		return nil, false, err
	}
	out := r.Store.NewFunc()
	err = r.Store.Storage.GuaranteedUpdate(ctx, key, out, false, preconditions,
		storage.SimpleUpdate(func(existing runtime.Object) (runtime.Object, error) {
			ns := existing.(*corev1.Namespace)
			if deleteValidation != nil {
				if err := deleteValidation(ctx, ns); err != nil {
					return nil, err
				}
			}
			if ns.DeletionTimestamp == nil {
				now := metav1.Now()
				zero := int64(0)
				ns.DeletionTimestamp, ns.DeletionGracePeriodSeconds = &now, &zero
			}
			ns.Status.Phase = corev1.NamespaceTerminating
			return ns, nil
		}), len(options.DryRun) > 0, nil)
	if err != nil {
		return nil, false, err
	}
	return out, false, nil
}

// namespaceShouldDeleteDuringUpdate removes a terminating namespace once both its
// finalizer lists are empty.
func namespaceShouldDeleteDuringUpdate(ctx context.Context, key string, obj, existing runtime.Object) bool {
	ns, old := obj.(*corev1.Namespace), existing.(*corev1.Namespace)
	return old.DeletionTimestamp != nil && len(ns.Finalizers) == 0 && len(ns.Spec.Finalizers) == 0
}

// createDefaultNamespaces creates the namespaces every cluster has.
func createDefaultNamespaces(ctx context.Context, client kubernetes.Interface) error {
	for _, name := range []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease} {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			if err == nil || apierrors.IsAlreadyExists(err) {
				return true, nil
			}
			klog.V(2).Infof("creating namespace %s: %v", name, err)
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("namespace %s: %w", name, err)
		}
	}
	return nil
}
