// KEDA custom resources checked against their schemas (@kubernetes-models/keda); used by scripts/check-kubernetes.
import fs from "node:fs";
import yaml from "js-yaml";
import * as keda from "@kubernetes-models/keda/keda.sh/v1alpha1";
let failed = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(fs.readFileSync(file, "utf8"))) {
    if (!doc || doc.apiVersion !== "keda.sh/v1alpha1") continue;
    const Kind = keda[doc.kind];
    if (!Kind) { console.error(`${file}: unknown KEDA kind ${doc.kind}`); failed = 1; continue; }
    try { new Kind(doc).validate(); console.log(`ok: ${doc.kind}/${doc.metadata.name}`); }
    catch (e) { console.error(`${file}: ${doc.kind}/${doc.metadata && doc.metadata.name}: ${e.message}`); failed = 1; }
  }
}
process.exit(failed);
