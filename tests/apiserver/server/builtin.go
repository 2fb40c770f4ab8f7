package main

import (
	"context"
	"fmt"
	"reflect"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/storage/names"
	storagevalue "k8s.io/apiserver/pkg/storage/value"
	flowcontrolrequest "k8s.io/apiserver/pkg/util/flowcontrol/request"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// builtinScheme holds the built-in types this server serves. It is kept apart from
// apiextensions' scheme so that the internal-version registrations below never reach
// the OpenAPI namer (which uses client-go's scheme).
var (
	builtinScheme = runtime.NewScheme()
	builtinCodecs = serializer.NewCodecFactory(builtinScheme)
)

// builtin describes one served built-in resource.
type builtin struct {
	gv         schema.GroupVersion
	resource   string
	singular   string
	shortNames []string
	obj, list  runtime.Object
	namespaced bool
	// status: the resource has a status subresource; spec and status are each
	// written only through their own endpoint.
	status bool
	// nameFn validates metadata.name (DNS subdomain when nil).
	nameFn validation.ValidateNameFunc
	// prepare adjusts an object before it is stored (old is nil on create).
	prepare func(obj, old runtime.Object)
	// validate checks the type's own fields.
	validate func(obj runtime.Object) field.ErrorList
}

var builtins = []*builtin{
	{gv: corev1.SchemeGroupVersion, resource: "namespaces", singular: "namespace", shortNames: []string{"ns"},
		obj: &corev1.Namespace{}, list: &corev1.NamespaceList{}, status: true,
		nameFn: validation.NameIsDNSLabel, prepare: prepareNamespace},
	{gv: corev1.SchemeGroupVersion, resource: "secrets", singular: "secret",
		obj: &corev1.Secret{}, list: &corev1.SecretList{}, namespaced: true, prepare: prepareSecret},
	{gv: corev1.SchemeGroupVersion, resource: "configmaps", singular: "configmap", shortNames: []string{"cm"},
		obj: &corev1.ConfigMap{}, list: &corev1.ConfigMapList{}, namespaced: true},
	{gv: corev1.SchemeGroupVersion, resource: "events", singular: "event", shortNames: []string{"ev"},
		obj: &corev1.Event{}, list: &corev1.EventList{}, namespaced: true},
	{gv: corev1.SchemeGroupVersion, resource: "serviceaccounts", singular: "serviceaccount", shortNames: []string{"sa"},
		obj: &corev1.ServiceAccount{}, list: &corev1.ServiceAccountList{}, namespaced: true},
	{gv: corev1.SchemeGroupVersion, resource: "pods", singular: "pod", shortNames: []string{"po"},
		obj: &corev1.Pod{}, list: &corev1.PodList{}, namespaced: true, status: true, prepare: preparePod,
		validate: validatePod},
	{gv: corev1.SchemeGroupVersion, resource: "services", singular: "service", shortNames: []string{"svc"},
		obj: &corev1.Service{}, list: &corev1.ServiceList{}, namespaced: true, status: true,
		nameFn: validation.NameIsDNS1035Label},
	{gv: coordinationv1.SchemeGroupVersion, resource: "leases", singular: "lease",
		obj: &coordinationv1.Lease{}, list: &coordinationv1.LeaseList{}, namespaced: true},
	{gv: eventsv1.SchemeGroupVersion, resource: "events", singular: "event", shortNames: []string{"ev"},
		obj: &eventsv1.Event{}, list: &eventsv1.EventList{}, namespaced: true},
	{gv: admissionregistrationv1.SchemeGroupVersion, resource: "mutatingwebhookconfigurations",
		singular: "mutatingwebhookconfiguration",
		obj:      &admissionregistrationv1.MutatingWebhookConfiguration{}, list: &admissionregistrationv1.MutatingWebhookConfigurationList{},
		validate: validateWebhookConfiguration},
	{gv: admissionregistrationv1.SchemeGroupVersion, resource: "validatingwebhookconfigurations",
		singular: "validatingwebhookconfiguration",
		obj:      &admissionregistrationv1.ValidatingWebhookConfiguration{}, list: &admissionregistrationv1.ValidatingWebhookConfigurationList{},
		validate: validateWebhookConfiguration},
}

// groupVersions are the built-in versions served, in the order they are installed.
var groupVersions = []schema.GroupVersion{
	corev1.SchemeGroupVersion,
	coordinationv1.SchemeGroupVersion,
	eventsv1.SchemeGroupVersion,
	admissionregistrationv1.SchemeGroupVersion,
	authenticationv1.SchemeGroupVersion,
}

func init() {
	utilruntime.Must(corev1.AddToScheme(builtinScheme))
	utilruntime.Must(coordinationv1.AddToScheme(builtinScheme))
	utilruntime.Must(eventsv1.AddToScheme(builtinScheme))
	utilruntime.Must(admissionregistrationv1.AddToScheme(builtinScheme))
	utilruntime.Must(authenticationv1.AddToScheme(builtinScheme))
	for _, gv := range groupVersions {
		utilruntime.Must(builtinScheme.SetVersionPriority(gv))
	}

	// The generic server works on an internal version of every type and converts at
	// the edges. Registering each v1 type as its group's internal type too makes
	// those conversions copies.
	internal := []runtime.Object{&authenticationv1.TokenReview{}}
	for _, b := range builtins {
		internal = append(internal, b.obj, b.list)
	}
	for _, obj := range internal {
		gvks, _, err := builtinScheme.ObjectKinds(obj)
		utilruntime.Must(err)
		gv := schema.GroupVersion{Group: gvks[0].Group, Version: runtime.APIVersionInternal}
		builtinScheme.AddKnownTypes(gv, obj)
		utilruntime.Must(builtinScheme.AddConversionFunc(obj, obj, copyConversion))
	}
	addDefaulters(builtinScheme)
}

func copyConversion(in, out interface{}, _ conversion.Scope) error {
	reflect.ValueOf(out).Elem().Set(reflect.ValueOf(in).Elem())
	return nil
}

// builtinRESTOptionsGetter stores built-in objects in etcd as their v1 JSON.
func builtinRESTOptionsGetter(etcd *genericoptions.EtcdOptions, transformers storagevalue.ResourceTransformers, tracker flowcontrolrequest.StorageObjectCountTracker) generic.RESTOptionsGetter {
	cfg := etcd.StorageConfig
	cfg.Codec = builtinCodecs.LegacyCodec(groupVersions...)
	cfg.StorageObjectCountTracker = tracker
	return etcd.CreateRESTOptionsGetter(&genericoptions.SimpleStorageFactory{StorageConfig: cfg}, transformers)
}

// installBuiltins installs the built-in API groups on the apiextensions server.
func installBuiltins(gs *genericapiserver.GenericAPIServer, getter generic.RESTOptionsGetter, tokens authenticator.Token) error {
	infos := map[schema.GroupVersion]*genericapiserver.APIGroupInfo{}
	for _, gv := range groupVersions {
		info := genericapiserver.NewDefaultAPIGroupInfo(gv.Group, builtinScheme, metav1.ParameterCodec, builtinCodecs)
		info.PrioritizedVersions = []schema.GroupVersion{gv}
		info.VersionedResourcesStorageMap[gv.Version] = map[string]rest.Storage{}
		infos[gv] = &info
	}
	for _, b := range builtins {
		storage, err := b.storage(getter)
		if err != nil {
			return fmt.Errorf("%s: %w", b.resource, err)
		}
		for path, s := range storage {
			infos[b.gv].VersionedResourcesStorageMap[b.gv.Version][path] = s
		}
	}
	infos[authenticationv1.SchemeGroupVersion].VersionedResourcesStorageMap["v1"]["tokenreviews"] = &tokenReviewREST{tokens: tokens}

	if err := gs.InstallLegacyAPIGroup(genericapiserver.DefaultLegacyAPIPrefix, infos[corev1.SchemeGroupVersion]); err != nil {
		return fmt.Errorf("core/v1: %w", err)
	}
	for _, gv := range groupVersions[1:] {
		if err := gs.InstallAPIGroups(infos[gv]); err != nil {
			return fmt.Errorf("%s: %w", gv, err)
		}
	}
	return nil
}

func (b *builtin) newObject() runtime.Object {
	return reflect.New(reflect.TypeOf(b.obj).Elem()).Interface().(runtime.Object)
}

func (b *builtin) groupResource() schema.GroupResource {
	return schema.GroupResource{Group: b.gv.Group, Resource: b.resource}
}

// storage builds the REST storage of the resource and its subresources, keyed by path.
func (b *builtin) storage(getter generic.RESTOptionsGetter) (map[string]rest.Storage, error) {
	st := &strategy{ObjectTyper: builtinScheme, NameGenerator: names.SimpleNameGenerator, b: b}
	store := &registry.Store{
		NewFunc:                   b.newObject,
		NewListFunc:               func() runtime.Object { return reflect.New(reflect.TypeOf(b.list).Elem()).Interface().(runtime.Object) },
		DefaultQualifiedResource:  b.groupResource(),
		SingularQualifiedResource: schema.GroupResource{Group: b.gv.Group, Resource: b.singular},
		CreateStrategy:            st,
		UpdateStrategy:            st,
		DeleteStrategy:            st,
		ResetFieldsStrategy:       st,
		TableConvertor:            rest.NewDefaultTableConvertor(b.groupResource()),
	}
	if b.resource == "namespaces" {
		store.ShouldDeleteDuringUpdate = namespaceShouldDeleteDuringUpdate
	}
	if err := store.CompleteWithOptions(&generic.StoreOptions{RESTOptions: getter}); err != nil {
		return nil, err
	}
	out := map[string]rest.Storage{}
	var main rest.Storage = &resourceREST{Store: store, shortNames: b.shortNames}
	if b.resource == "namespaces" {
		main = &namespaceREST{resourceREST: resourceREST{Store: store, shortNames: b.shortNames}}
		finalize := *store
		finalize.UpdateStrategy = &finalizeStrategy{strategy: st}
		finalize.ResetFieldsStrategy = &finalizeStrategy{strategy: st}
		out[b.resource+"/finalize"] = &subresourceREST{store: &finalize}
	}
	out[b.resource] = main
	if b.status {
		status := *store
		status.UpdateStrategy = &statusStrategy{strategy: st}
		status.ResetFieldsStrategy = &statusStrategy{strategy: st}
		out[b.resource+"/status"] = &subresourceREST{store: &status}
	}
	return out, nil
}

// resourceREST is a resource's main endpoint.
type resourceREST struct {
	*registry.Store
	shortNames []string
}

func (r *resourceREST) ShortNames() []string { return r.shortNames }

// subresourceREST serves a subresource (status, finalize) that updates part of an object.
type subresourceREST struct {
	store *registry.Store
}

func (r *subresourceREST) New() runtime.Object { return r.store.New() }
func (r *subresourceREST) Destroy()            {}

func (r *subresourceREST) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	return r.store.Get(ctx, name, options)
}

func (r *subresourceREST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, _ bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	// Subresources never create their object.
	return r.store.Update(ctx, name, objInfo, createValidation, updateValidation, false, options)
}

func (r *subresourceREST) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return r.store.GetResetFields()
}

// strategy is the create/update/delete strategy shared by the built-in resources.
type strategy struct {
	runtime.ObjectTyper
	names.NameGenerator
	b *builtin
}

func (s *strategy) NamespaceScoped() bool { return s.b.namespaced }

func (s *strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	if s.b.status {
		clearField(obj, "Status")
	}
	if m, err := meta.Accessor(obj); err == nil {
		m.SetGeneration(1)
	}
	if s.b.prepare != nil {
		s.b.prepare(obj, nil)
	}
}

func (s *strategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	if s.b.status {
		copyField(obj, old, "Status")
	}
	bumpGeneration(obj, old)
	if s.b.prepare != nil {
		s.b.prepare(obj, old)
	}
}

func (s *strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	m, err := meta.Accessor(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(field.NewPath("metadata"), err)}
	}
	nameFn := s.b.nameFn
	if nameFn == nil {
		nameFn = validation.NameIsDNSSubdomain
	}
	errs := validation.ValidateObjectMetaAccessor(m, s.b.namespaced, nameFn, field.NewPath("metadata"))
	if s.b.validate != nil {
		errs = append(errs, s.b.validate(obj)...)
	}
	return errs
}

func (s *strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	newMeta, err := meta.Accessor(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(field.NewPath("metadata"), err)}
	}
	oldMeta, err := meta.Accessor(old)
	if err != nil {
		return field.ErrorList{field.InternalError(field.NewPath("metadata"), err)}
	}
	errs := validation.ValidateObjectMetaAccessorUpdate(newMeta, oldMeta, field.NewPath("metadata"))
	if s.b.validate != nil {
		errs = append(errs, s.b.validate(obj)...)
	}
	return errs
}

func (s *strategy) WarningsOnCreate(context.Context, runtime.Object) []string { return nil }
func (s *strategy) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}
func (s *strategy) Canonicalize(runtime.Object)    {}
func (s *strategy) AllowCreateOnUpdate() bool      { return s.b.resource == "leases" }
func (s *strategy) AllowUnconditionalUpdate() bool { return true }

func (s *strategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	if !s.b.status {
		return nil
	}
	return map[fieldpath.APIVersion]*fieldpath.Set{
		fieldpath.APIVersion(s.b.gv.String()): fieldpath.NewSet(fieldpath.MakePathOrDie("status")),
	}
}

// statusStrategy takes only the status of an update; the rest stays as stored.
type statusStrategy struct{ *strategy }

func (s *statusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	status := reflect.ValueOf(obj).Elem().FieldByName("Status")
	kept := reflect.New(status.Type()).Elem()
	kept.Set(status)
	managed := managedFields(obj)
	// The store has checked the request's resourceVersion already, so the old
	// object's may be taken with the rest of it.
	reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(old.DeepCopyObject()).Elem())
	reflect.ValueOf(obj).Elem().FieldByName("Status").Set(kept)
	setManagedFields(obj, managed)
}

func (s *statusStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return s.strategy.ValidateUpdate(ctx, obj, old)
}

func (s *statusStrategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return map[fieldpath.APIVersion]*fieldpath.Set{
		fieldpath.APIVersion(s.b.gv.String()): fieldpath.NewSet(fieldpath.MakePathOrDie("spec")),
	}
}

// finalizeStrategy takes only a namespace's spec.finalizers (namespaces/finalize).
type finalizeStrategy struct{ *strategy }

func (s *finalizeStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	ns, oldNS := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	finalizers, managed := ns.Spec.Finalizers, ns.ManagedFields
	*ns = *oldNS.DeepCopy()
	ns.Spec.Finalizers, ns.ManagedFields = finalizers, managed
}

func (s *finalizeStrategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return map[fieldpath.APIVersion]*fieldpath.Set{
		"v1": fieldpath.NewSet(fieldpath.MakePathOrDie("status")),
	}
}

func clearField(obj runtime.Object, name string) {
	if f := reflect.ValueOf(obj).Elem().FieldByName(name); f.IsValid() {
		f.Set(reflect.Zero(f.Type()))
	}
}

func copyField(dst, src runtime.Object, name string) {
	d := reflect.ValueOf(dst).Elem().FieldByName(name)
	s := reflect.ValueOf(src).Elem().FieldByName(name)
	if d.IsValid() && s.IsValid() {
		d.Set(s)
	}
}

// bumpGeneration increments metadata.generation when the spec changes.
func bumpGeneration(obj, old runtime.Object) {
	spec := reflect.ValueOf(obj).Elem().FieldByName("Spec")
	oldSpec := reflect.ValueOf(old).Elem().FieldByName("Spec")
	if !spec.IsValid() || equality.Semantic.DeepEqual(spec.Interface(), oldSpec.Interface()) {
		return
	}
	if m, err := meta.Accessor(obj); err == nil {
		m.SetGeneration(m.GetGeneration() + 1)
	}
}

// managedFields and setManagedFields carry the field manager's bookkeeping of an
// update across a strategy that otherwise keeps the stored object.
func managedFields(obj runtime.Object) []metav1.ManagedFieldsEntry {
	if m, err := meta.Accessor(obj); err == nil {
		return m.GetManagedFields()
	}
	return nil
}

func setManagedFields(obj runtime.Object, managed []metav1.ManagedFieldsEntry) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(managed)
	}
}
