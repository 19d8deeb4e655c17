"""Model training and the registry: `training.churn.train_churn` (labels, Feast features, LightGBM) and
`training.registry.Registry` (the only MLflow caller). Nothing is re-exported here, so that importing
`training.registry` from serving does not pull in matplotlib and scikit-learn."""
