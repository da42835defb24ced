"""The Pipeline operator: `Pipeline` custom resources (algorail.io/v1) reconciled into the
objects the algorail-pipeline chart renders from the compiled plan.

`resource` is the custom resource's model, `crd` generates its CustomResourceDefinition from
that model, `reconcile` is the pure reconcile function and `handlers` runs it under kopf.
"""
