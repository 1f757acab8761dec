# test/prove/pgxn_meta.jq: checks a META.json against the PGXN Meta Spec
# 1.0.0 (https://pgxn.org/spec/): the required keys and the type and form of
# every key the spec defines.  Prints one line per error, nothing when the
# file is valid:  jq -r -f pgxn_meta.jq META.json
# (No validator is packaged for Debian or npm; PGXN's own is the Perl module
# PGXN::Meta::Validator, which is not packaged either.)

def semver: type == "string" and test("^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$");
# a term: two characters or more, no slash, backslash, control or space character
def term: type == "string" and length >= 2 and (test("[/\\\\[:cntrl:][:space:]]") | not);
def tag: type == "string" and length >= 1 and length <= 255 and (test("[/\\\\[:cntrl:]]") | not);
def text: type == "string" and length > 0;
# a version range: 0 (any version), a version, or comparisons joined by commas
def range: (. == 0) or (type == "string" and (. == "0" or
    (split(",") | all(gsub("^\\s+|\\s+$"; "") | sub("^(==|!=|>=|<=|>|<)\\s*"; "") | semver))));
def licenses: ["agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd", "freebsd",
    "gfdl_1_2", "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1", "lgpl_3_0", "mit", "mozilla_1_0",
    "mozilla_1_1", "openssl", "perl_5", "postgresql", "qpl_1_0", "ssleay", "sun", "zlib",
    "open_source", "restricted", "unrestricted", "unknown"];
def custom: startswith("x_") or startswith("X_");
def among($list): . as $x | $list | index([$x]) != null;

if type != "object" then "the document is not a JSON object" else
  . as $m
  | (["name", "abstract", "version", "maintainer", "license", "provides", "meta-spec"][]
       | select($m[.] == null) | "missing mandatory field \"\(.)\""),
    (keys[] | select((among(["name", "abstract", "description", "version", "maintainer", "license",
                              "provides", "meta-spec", "prereqs", "resources", "no_index",
                              "release_status", "generated_by", "tags"]) or custom) | not)
            | "unknown field \"\(.)\" (custom fields begin with x_)"),
    (select(has("name") and (.name | term | not)) | "name must be a term (2+ characters, no slash, backslash, control or space)"),
    (select(has("abstract") and (.abstract | text | not)) | "abstract must be a non-empty string"),
    (select(has("description") and (.description | text | not)) | "description must be a non-empty string"),
    (select(has("version") and (.version | semver | not)) | "version \(.version | tojson) is not a semantic version (x.y.z)"),
    (select(has("maintainer") and (((.maintainer | text) or
        (.maintainer | type == "array" and length > 0 and all(text))) | not))
       | "maintainer must be a string or a non-empty list of strings"),
    (select(has("license") and (((.license | type == "string" and among(licenses)) or
        (.license | type == "array" and length > 0 and all(among(licenses))) or
        (.license | type == "object" and length > 0 and all(.[]; text))) | not))
       | "license must be a known license name, a list of them, or an object of names and URLs"),
    (select(has("provides")) | .provides
       | if type != "object" or length == 0 then "provides must be a non-empty object"
         else to_entries[]
           | .key as $e | .value
           | if type != "object" then "provides.\($e) must be an object"
             else (select(($e | term) | not) | "provides: \($e | tojson) is not a term"),
                  (select((.file | text) | not) | "provides.\($e).file must be a non-empty string"),
                  (select((.version | semver) | not) | "provides.\($e).version \(.version | tojson) is not a semantic version"),
                  (select(has("abstract") and (.abstract | text | not)) | "provides.\($e).abstract must be a non-empty string"),
                  (select(has("docfile") and (.docfile | text | not)) | "provides.\($e).docfile must be a non-empty string"),
                  (keys[] | select((among(["file", "version", "abstract", "docfile"]) or custom) | not)
                          | "provides.\($e): unknown field \"\(.)\"")
             end
         end),
    (select(has("meta-spec")) | .["meta-spec"]
       | if type != "object" then "meta-spec must be an object"
         else (select(.version != "1.0.0") | "meta-spec.version must be \"1.0.0\""),
              (select(has("url") and (.url | text | not)) | "meta-spec.url must be a string")
         end),
    (select(has("prereqs")) | .prereqs
       | if type != "object" then "prereqs must be an object"
         else to_entries[]
           | .key as $phase
           | if ($phase | among(["configure", "build", "test", "runtime", "develop"]) | not)
             then "prereqs: unknown phase \"\($phase)\""
             else .value | to_entries[]
               | .key as $rel
               | if ($rel | among(["requires", "recommends", "suggests", "conflicts"]) | not)
                 then "prereqs.\($phase): unknown relationship \"\($rel)\""
                 else .value | to_entries[] | select((.value | range) | not)
                   | "prereqs.\($phase).\($rel).\(.key): \(.value | tojson) is not a version range"
                 end
             end
         end),
    (select(has("resources")) | .resources
       | if type != "object" then "resources must be an object"
         else (select(has("homepage") and (.homepage | text | not)) | "resources.homepage must be a URL string"),
              (select(has("bugtracker") and (.bugtracker | type != "object" or length == 0 or
                  any(to_entries[]; (.key | among(["web", "mailto"]) | not) or (.value | text | not))))
                 | "resources.bugtracker must be an object of web and/or mailto strings"),
              (select(has("repository") and (.repository | type != "object" or length == 0 or
                  any(to_entries[]; (.key | among(["url", "web", "type"]) | not) or (.value | text | not))))
                 | "resources.repository must be an object of url, web and type strings")
         end),
    (select(has("release_status") and (.release_status | among(["stable", "testing", "unstable"]) | not))
       | "release_status must be stable, testing or unstable"),
    (select(has("generated_by") and (.generated_by | text | not)) | "generated_by must be a non-empty string"),
    (select(has("tags") and ((.tags | type == "array" and length > 0 and all(tag)) | not))
       | "tags must be a non-empty list of tags (up to 255 characters, no slash, backslash or control character)"),
    (select(has("no_index") and (.no_index | type != "object")) | "no_index must be an object")
end
