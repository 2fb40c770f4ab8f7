package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	restclient "k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

// collector stands in for kube-controller-manager's garbage collector and namespace
// controller. Once a second it lists every resource and:
//   - deletes the contents of terminating namespaces, then finalizes them;
//   - handles the orphan and foregroundDeletion finalizers of objects being deleted;
//   - deletes objects none of whose ownerReferences exist any more.
//
// It is a polling loop, simple rather than fast: a dependent goes within about a
// second of its last owner.
type collector struct {
	dyn  dynamic.Interface
	disc discovery.DiscoveryInterface
}

type resourceInfo struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}

type object struct {
	res resourceInfo
	obj *unstructured.Unstructured
}

const (
	finalizerOrphan     = metav1.FinalizerOrphanDependents
	finalizerForeground = metav1.FinalizerDeleteDependents
)

func newCollector(config *restclient.Config) (*collector, error) {
	config = restclient.CopyConfig(config)
	config.QPS, config.Burst = 200, 400
	dyn, err := dynamic.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		return nil, err
	}
	return &collector{dyn: dyn, disc: disc}, nil
}

func (c *collector) run(ctx context.Context) {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := c.sweep(ctx); err != nil && ctx.Err() == nil {
			klog.V(2).Infof("garbage collector: %v", err)
		}
	}, time.Second)
}

// resources lists what can be listed and deleted, with a map from group+kind to it.
func (c *collector) resources() ([]resourceInfo, map[schema.GroupKind]resourceInfo, error) {
	lists, err := c.disc.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, nil, err
	}
	var out []resourceInfo
	byKind := map[schema.GroupKind]resourceInfo{}
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range list.APIResources {
			verbs := sets.New[string](r.Verbs...)
			if strings.Contains(r.Name, "/") || !verbs.Has("list") || !verbs.Has("delete") {
				continue
			}
			info := resourceInfo{gvr: gv.WithResource(r.Name), namespaced: r.Namespaced}
			out = append(out, info)
			byKind[schema.GroupKind{Group: gv.Group, Kind: r.Kind}] = info
		}
	}
	return out, byKind, nil
}

func (c *collector) sweep(ctx context.Context) error {
	resources, byKind, err := c.resources()
	if err != nil {
		return err
	}
	var all []object
	uids := map[types.UID]bool{}
	for _, r := range resources {
		list, err := c.dyn.Resource(r.gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("listing %s: %w", r.gvr, err)
		}
		for i := range list.Items {
			all = append(all, object{res: r, obj: &list.Items[i]})
			uids[list.Items[i].GetUID()] = true
		}
	}

	// Terminating namespaces: delete what is in them, then drop their finalizer.
	terminating := map[string]int{}
	for _, o := range all {
		if o.res.gvr.Resource == "namespaces" && o.res.gvr.Group == "" && o.obj.GetDeletionTimestamp() != nil {
			terminating[o.obj.GetName()] = 0
		}
	}
	for _, o := range all {
		if _, ok := terminating[o.obj.GetNamespace()]; !ok || !o.res.namespaced {
			continue
		}
		terminating[o.obj.GetNamespace()]++
		if o.obj.GetDeletionTimestamp() == nil {
			c.delete(ctx, o, metav1.DeletePropagationBackground)
		}
	}
	for ns, left := range terminating {
		if left == 0 {
			c.finalizeNamespace(ctx, ns)
		}
	}

	dependents := map[types.UID][]object{}
	for _, o := range all {
		for _, ref := range o.obj.GetOwnerReferences() {
			dependents[ref.UID] = append(dependents[ref.UID], o)
		}
	}
	for _, o := range all {
		if o.obj.GetDeletionTimestamp() == nil {
			continue
		}
		finalizers := sets.New[string](o.obj.GetFinalizers()...)
		deps := dependents[o.obj.GetUID()]
		if finalizers.Has(finalizerOrphan) {
			for _, d := range deps {
				c.removeOwner(ctx, d, o.obj.GetUID())
			}
			c.removeFinalizer(ctx, o, finalizerOrphan)
		}
		if finalizers.Has(finalizerForeground) {
			for _, d := range deps {
				if d.obj.GetDeletionTimestamp() == nil {
					c.delete(ctx, d, metav1.DeletePropagationForeground)
				}
			}
			if len(deps) == 0 {
				c.removeFinalizer(ctx, o, finalizerForeground)
			}
		}
	}

	// Dependents whose owners are all gone.
	for _, o := range all {
		refs := o.obj.GetOwnerReferences()
		if len(refs) == 0 || o.obj.GetDeletionTimestamp() != nil {
			continue
		}
		orphaned := true
		for _, ref := range refs {
			if uids[ref.UID] || c.ownerExists(ctx, o, ref, byKind) {
				orphaned = false
				break
			}
		}
		if orphaned {
			c.delete(ctx, o, metav1.DeletePropagationBackground)
		}
	}
	return nil
}

// ownerExists checks an owner the listing did not see with a live read, as the
// listing may predate its creation.
func (c *collector) ownerExists(ctx context.Context, dependent object, ref metav1.OwnerReference, byKind map[schema.GroupKind]resourceInfo) bool {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return false
	}
	info, ok := byKind[schema.GroupKind{Group: gv.Group, Kind: ref.Kind}]
	if !ok {
		// A kind this server does not know cannot be checked: keep the dependent.
		return true
	}
	var owner *unstructured.Unstructured
	if info.namespaced {
		owner, err = c.dyn.Resource(info.gvr).Namespace(dependent.obj.GetNamespace()).Get(ctx, ref.Name, metav1.GetOptions{})
	} else {
		owner, err = c.dyn.Resource(info.gvr).Get(ctx, ref.Name, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		return false
	}
	return err != nil || owner.GetUID() == ref.UID
}

func (c *collector) client(o object) dynamic.ResourceInterface {
	if o.res.namespaced {
		return c.dyn.Resource(o.res.gvr).Namespace(o.obj.GetNamespace())
	}
	return c.dyn.Resource(o.res.gvr)
}

func (c *collector) delete(ctx context.Context, o object, policy metav1.DeletionPropagation) {
	uid := o.obj.GetUID()
	err := c.client(o).Delete(ctx, o.obj.GetName(), metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: &uid},
		PropagationPolicy: &policy,
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		klog.V(2).Infof("garbage collector: deleting %s %s/%s: %v", o.res.gvr.Resource, o.obj.GetNamespace(), o.obj.GetName(), err)
	}
}

func (c *collector) removeOwner(ctx context.Context, o object, owner types.UID) {
	obj := o.obj.DeepCopy()
	var kept []metav1.OwnerReference
	for _, ref := range obj.GetOwnerReferences() {
		if ref.UID != owner {
			kept = append(kept, ref)
		}
	}
	obj.SetOwnerReferences(kept)
	if _, err := c.client(o).Update(ctx, obj, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		klog.V(2).Infof("garbage collector: orphaning %s/%s: %v", o.obj.GetNamespace(), o.obj.GetName(), err)
	}
}

func (c *collector) removeFinalizer(ctx context.Context, o object, finalizer string) {
	obj := o.obj.DeepCopy()
	var kept []string
	for _, f := range obj.GetFinalizers() {
		if f != finalizer {
			kept = append(kept, f)
		}
	}
	obj.SetFinalizers(kept)
	if _, err := c.client(o).Update(ctx, obj, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		klog.V(2).Infof("garbage collector: removing finalizer %s of %s/%s: %v", finalizer, o.obj.GetNamespace(), o.obj.GetName(), err)
	}
}

func (c *collector) finalizeNamespace(ctx context.Context, name string) {
	namespaces := c.dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	ns, err := namespaces.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return
	}
	var kept []interface{}
	finalizers, _, _ := unstructured.NestedSlice(ns.Object, "spec", "finalizers")
	for _, f := range finalizers {
		if f != "kubernetes" {
			kept = append(kept, f)
		}
	}
	if err := unstructured.SetNestedSlice(ns.Object, kept, "spec", "finalizers"); err != nil {
		return
	}
	if _, err := namespaces.Update(ctx, ns, metav1.UpdateOptions{}, "finalize"); err != nil && !apierrors.IsNotFound(err) {
		klog.V(2).Infof("garbage collector: finalizing namespace %s: %v", name, err)
	}
}
