package main

import (
	"sort"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdinformers "k8s.io/apiextensions-apiserver/pkg/client/informers/externalversions/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/endpoints/discovery"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// publishCRDGroups lists the groups of established CRDs in /apis. apiextensions
// already serves /apis/<group> and /apis/<group>/<version> and the aggregated
// discovery document; behind kube-apiserver the aggregator lists the groups, and here
// this does.
func publishCRDGroups(informer crdinformers.CustomResourceDefinitionInformer, groups discovery.GroupManager) {
	var mu sync.Mutex
	published := map[string]bool{}
	resync := func() {
		mu.Lock()
		defer mu.Unlock()
		crds, err := informer.Lister().List(labels.Everything())
		if err != nil {
			klog.Errorf("listing CRDs for discovery: %v", err)
			return
		}
		served := map[string]map[string]bool{}
		for _, crd := range crds {
			if !apihelpers.IsCRDConditionTrue(crd, apiextensionsv1.Established) {
				continue
			}
			for _, v := range crd.Spec.Versions {
				if !v.Served {
					continue
				}
				if served[crd.Spec.Group] == nil {
					served[crd.Spec.Group] = map[string]bool{}
				}
				served[crd.Spec.Group][v.Name] = true
			}
		}
		for group, versionSet := range served {
			versions := make([]string, 0, len(versionSet))
			for v := range versionSet {
				versions = append(versions, v)
			}
			sort.Slice(versions, func(i, j int) bool {
				return version.CompareKubeAwareVersionStrings(versions[i], versions[j]) > 0
			})
			apiGroup := metav1.APIGroup{Name: group}
			for _, v := range versions {
				apiGroup.Versions = append(apiGroup.Versions, metav1.GroupVersionForDiscovery{GroupVersion: group + "/" + v, Version: v})
			}
			apiGroup.PreferredVersion = apiGroup.Versions[0]
			groups.AddGroup(apiGroup)
			published[group] = true
		}
		for group := range published {
			if served[group] == nil {
				groups.RemoveGroup(group)
				delete(published, group)
			}
		}
	}
	_, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(interface{}) { resync() },
		UpdateFunc: func(interface{}, interface{}) { resync() },
		DeleteFunc: func(interface{}) { resync() },
	})
	if err != nil {
		klog.Errorf("watching CRDs for discovery: %v", err)
	}
}
