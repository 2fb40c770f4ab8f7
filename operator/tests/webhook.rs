//! The injection webhook against the real API server from `tests/apiserver`: the
//! operator's own webhook code makes its CA and serving certificate in a Secret, fills
//! in the webhook configuration's caBundle and publishes the CA ConfigMap; a pod created
//! in a namespace labelled `llmesh.io/injection=enabled` comes back injected, one that
//! opts out does not; one asking for more memory than the default limit gets a valid
//! sidecar (its limit raised) and a warning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use http_body_util::BodyExt;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use llmesh_crds::VirtualKey;
use llmesh_operator::metrics::Metrics;
use llmesh_operator::webhook::quantity::Quantity;
use llmesh_operator::webhook::{self, Settings, certs, inject};
use llmesh_tests::apiserver::{TestEnv, apply_crds};
use llmesh_tests::eventually;
use serde_json::json;

#[tokio::test]
async fn pods_in_a_labelled_namespace_come_back_injected() {
    let Some(env) = TestEnv::new("inject").await else {
        return;
    };
    apply_crds(&env.client, &llmesh_crds::crds()).await;
    // The test's namespace plays the operator's; the apps live in a labelled one.
    let apps = format!("{}-apps", env.namespace);
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": {"name": apps, "labels": {
            "llmesh.io/injection": "enabled", "llmesh.io/test": "true"
        }}
    }))
    .unwrap();
    Api::<Namespace>::all(env.client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();

    let cert_dir = std::env::temp_dir().join(format!("llmesh-webhook-{}", env.namespace));
    let config_name = format!("llmesh-inject-{}", env.namespace);
    let vars = [
        ("LLMESH_WEBHOOK_LISTEN", "127.0.0.1:0".to_owned()),
        ("LLMESH_SIDECAR_IMAGE", "llmesh/sidecar:test".to_owned()),
        ("POD_NAMESPACE", env.namespace.clone()),
        ("LLMESH_CERT_DIR", cert_dir.display().to_string()),
        ("LLMESH_WEBHOOK_CONFIG", config_name.clone()),
        // Only the apps namespace gets the CA ConfigMap: other tests share the server.
        ("LLMESH_WATCH_NAMESPACE", apps.clone()),
    ];
    let mut settings = Settings::from_lookup(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
    .unwrap();
    // The API server calls the webhook by IP here, not through a Service.
    settings.names.push("127.0.0.1".into());
    let prepared = webhook::prepare_with(&env.client, settings.clone())
        .await
        .unwrap();
    let port = prepared.local_addr().unwrap().port();
    let ca = prepared.ca_pem().to_owned();
    // The pair for the push server is on disk, and the Secret holds the same CA.
    assert!(cert_dir.join("tls.crt").exists() && cert_dir.join("tls.key").exists());
    let secret = Api::<Secret>::namespaced(env.client.clone(), &env.namespace)
        .get("llmesh-operator-tls")
        .await
        .unwrap();
    assert_eq!(certs::bundle(&secret).unwrap().ca_pem, ca);
    // A second replica starting now reads the same CA rather than making its own.
    let mut second = settings.clone();
    second.listen = "127.0.0.1:0".parse().unwrap();
    let twin = webhook::prepare_with(&env.client, second).await.unwrap();
    assert_eq!(twin.ca_pem(), ca);
    drop(twin);

    // Registered the way the chart does, caBundle left for the operator to fill in; only
    // the apps namespace matches, so the other tests sharing the server are unaffected.
    let config: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": config_name},
        "webhooks": [{
            "name": "namespace.inject.llmesh.io",
            "clientConfig": {"url": format!("https://127.0.0.1:{port}{}", webhook::PATH)},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "namespaceSelector": {"matchExpressions": [
                {"key": "llmesh.io/injection", "operator": "In", "values": ["enabled"]},
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [apps]}
            ]},
            "failurePolicy": "Fail",
            "reinvocationPolicy": "IfNeeded",
            "sideEffects": "None",
            "timeoutSeconds": 10,
            "admissionReviewVersions": ["v1"]
        }]
    }))
    .unwrap();
    let configs: Api<MutatingWebhookConfiguration> = Api::all(env.client.clone());
    configs
        .create(&PostParams::default(), &config)
        .await
        .unwrap();
    let metrics = Metrics::new().unwrap();
    let server = tokio::spawn(prepared.run(
        env.client.clone(),
        metrics.clone(),
        std::future::pending::<()>(),
    ));

    eventually(10, "the caBundle to be set", || async {
        let current = configs.get(&config_name).await.unwrap();
        let bundle = current.webhooks?[0].client_config.ca_bundle.clone()?;
        (bundle.0 == ca.as_bytes()).then_some(())
    })
    .await;
    let config_maps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &apps);
    eventually(10, "the CA ConfigMap to be published", || async {
        let cm = config_maps.get_opt("llmesh-ca").await.unwrap()?;
        (cm.data?.get("ca.crt")? == &ca).then_some(())
    })
    .await;

    // A VirtualKey naming its own Secret: the app's OPENAI_API_KEY comes from there.
    let key: VirtualKey = serde_json::from_value(json!({
        "apiVersion": "llmesh.io/v1alpha1", "kind": "VirtualKey",
        "metadata": {"name": "team", "namespace": apps},
        "spec": {"secretName": "team-credentials"}
    }))
    .unwrap();
    Api::<VirtualKey>::namespaced(env.client.clone(), &apps)
        .create(&PostParams::default(), &key)
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &apps);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "app", "annotations": {"llmesh.io/virtual-key": "team"}},
        "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}
    }))
    .unwrap();
    // The server learns of the configuration through an informer: dry-run until it calls.
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    eventually(15, "the webhook to inject a dry-run pod", || async {
        let created = pods.create(&dry, &pod).await.ok()?;
        let injected = created.metadata.annotations?.contains_key(inject::INJECTED);
        injected.then_some(())
    })
    .await;
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    let spec = created.spec.clone().unwrap();
    let init = spec.init_containers.clone().unwrap();
    assert_eq!(init.len(), 1, "injected once, not per invocation");
    let sidecar = &init[0];
    assert_eq!(sidecar.name, inject::SIDECAR_NAME);
    assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
    assert_eq!(sidecar.image.as_deref(), Some("llmesh/sidecar:test"));
    let args = sidecar.args.clone().unwrap();
    assert_eq!(
        args[1],
        format!("https://llmesh-operator.{}.svc:8443", env.namespace)
    );
    let sc = sidecar.security_context.clone().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sidecar.env.clone().unwrap()[0].value.as_deref(),
        Some("team")
    );
    let readiness = sidecar.readiness_probe.clone().unwrap().http_get.unwrap();
    assert_eq!(readiness.path.as_deref(), Some("/readyz"));
    let volume = spec
        .volumes
        .clone()
        .unwrap()
        .into_iter()
        .find(|v| v.name == inject::VOLUME_NAME)
        .unwrap();
    let sources = volume.projected.unwrap().sources.unwrap();
    assert_eq!(
        sources[0]
            .service_account_token
            .as_ref()
            .unwrap()
            .audience
            .as_deref(),
        Some("llmesh")
    );
    let app_env = spec.containers[0].env.clone().unwrap();
    assert_eq!(app_env[0].name, "OPENAI_BASE_URL");
    assert_eq!(app_env[0].value.as_deref(), Some(inject::BASE_URL));
    assert_eq!(app_env[1].name, "OPENAI_API_KEY");
    let key_ref = app_env[1]
        .value_from
        .clone()
        .unwrap()
        .secret_key_ref
        .unwrap();
    assert_eq!(key_ref.name, "team-credentials");
    assert_eq!(key_ref.key, "key");
    assert_eq!(app_env[2].name, "ANTHROPIC_BASE_URL");
    assert_eq!(
        app_env[2].value.as_deref(),
        Some(inject::ANTHROPIC_BASE_URL)
    );
    assert_eq!(app_env[3].name, "ANTHROPIC_API_KEY");
    assert_eq!(app_env[3].value_from, app_env[1].value_from);

    // A memory request above the default limit (256Mi) makes a valid pod: the limit is
    // raised to the request, and the API server passes the webhook's warning on. Sent as
    // a plain request so the response's Warning headers can be read.
    let big = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "big", "annotations": {inject::MEMORY_REQUEST: "1Gi"}},
        "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}
    });
    let request = http::Request::post(format!("/api/v1/namespaces/{apps}/pods"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&big).unwrap().into())
        .unwrap();
    let response = env.client.send(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::CREATED);
    let warnings: Vec<String> = response
        .headers()
        .get_all(http::header::WARNING)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let created: Pod = serde_json::from_slice(&body).unwrap();
    let sidecar = &created.spec.unwrap().init_containers.unwrap()[0];
    let resources = sidecar.resources.clone().unwrap();
    let request = resources.requests.unwrap()["memory"].0.clone();
    let limit = resources.limits.unwrap()["memory"].0.clone();
    assert_eq!((request.as_str(), limit.as_str()), ("1Gi", "1Gi"));
    assert!(Quantity::parse(&request).unwrap() <= Quantity::parse(&limit).unwrap());
    assert!(
        warnings.iter().any(|w| w.contains(inject::MEMORY_REQUEST)
            && w.contains("256Mi")
            && w.contains("raised to 1Gi")),
        "{warnings:?}"
    );

    // Opting out works in an enabled namespace.
    let out: Pod = serde_json::from_value(json!({
        "metadata": {"name": "opted-out", "annotations": {"llmesh.io/inject": "false"}},
        "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}
    }))
    .unwrap();
    let created = pods.create(&PostParams::default(), &out).await.unwrap();
    assert!(created.spec.unwrap().init_containers.is_none());

    let text = String::from_utf8(metrics.render()).unwrap();
    assert!(
        text.contains("llmesh_operator_injections_total{result=\"injected\"}"),
        "{text}"
    );

    configs
        .delete(&config_name, &DeleteParams::default())
        .await
        .unwrap();
    server.abort();
    let _ = Api::<Namespace>::all(env.client.clone())
        .delete(&apps, &DeleteParams::default())
        .await;
    let _ = std::fs::remove_dir_all(&cert_dir);
}

#[tokio::test]
async fn a_running_operator_renews_its_serving_certificate_under_the_same_ca() {
    let Some(env) = TestEnv::new("renew").await else {
        return;
    };
    let names = vec!["llmesh-operator.x.svc".to_owned()];
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.namespace);
    let first = certs::ensure_secret(&env.client, &env.namespace, "tls", &names)
        .await
        .unwrap();
    // Nothing due: nothing to serve anew.
    let none = certs::renew(
        &env.client,
        &env.namespace,
        "tls",
        &names,
        &first.ca_pem,
        &first.cert_pem,
    )
    .await
    .unwrap();
    assert!(none.is_none());

    // Due in ten days: renewed, same CA, and what the other replica then reads.
    let mut secret = secrets.get("tls").await.unwrap();
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(240);
    secret
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(certs::NOT_AFTER.to_owned(), soon.to_string());
    secrets
        .replace("tls", &PostParams::default(), &secret)
        .await
        .unwrap();
    let renewed = certs::renew(
        &env.client,
        &env.namespace,
        "tls",
        &names,
        &first.ca_pem,
        &first.cert_pem,
    )
    .await
    .unwrap()
    .expect("renewed");
    assert_eq!(renewed.ca_pem, first.ca_pem);
    assert_ne!(renewed.cert_pem, first.cert_pem);
    let other_replica = certs::renew(
        &env.client,
        &env.namespace,
        "tls",
        &names,
        &first.ca_pem,
        &first.cert_pem,
    )
    .await
    .unwrap()
    .expect("the renewed certificate for a replica still serving the old one");
    assert_eq!(other_replica.cert_pem, renewed.cert_pem);

    // A Secret holding another CA is never served by a running operator.
    let foreign = certs::renew(
        &env.client,
        &env.namespace,
        "tls",
        &names,
        "another CA",
        &renewed.cert_pem,
    )
    .await
    .unwrap();
    assert!(foreign.is_none());
}
