"""Task definitions: one YAML per task (data, languages, prompt, generation) and its Python hook."""
