// Renders the stack's own mapping templates (stack/templates/*.vtl) through Apache Velocity 1.7
// itself, with $input, $util, $context and $stageVariables standing in for API Gateway's (their
// escapeJavaScript is commons-lang 2's StringEscapeUtils, as API Gateway's is). Run by
// scripts/regenerate_velocity_cases.py; not needed by CI.
//
// Input (stdin): cases separated by "\u0000\n"; each case is four fields separated by "\u0000\t":
// template text, body, X-Run-Id header, path parameter id. Output: the rendered text per case
// (or "ERROR <exception>"), separated by "\u0000\n".
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import org.apache.commons.lang.StringEscapeUtils;
import org.apache.velocity.VelocityContext;
import org.apache.velocity.app.VelocityEngine;

public class RenderDeployedTemplates {
    public static class Input {
        private final String body;
        private final Map<String, String> params;
        public Input(String body, Map<String, String> params) { this.body = body; this.params = params; }
        public String getBody() { return body; }
        public String params(String name) { String v = params.get(name); return v == null ? "" : v; }
    }

    public static class Util {
        public String escapeJavaScript(String s) { return StringEscapeUtils.escapeJavaScript(s); }
    }

    public static void main(String[] args) throws Exception {
        VelocityEngine engine = new VelocityEngine();
        engine.setProperty("runtime.log.logsystem.class", "org.apache.velocity.runtime.log.NullLogChute");
        engine.init();
        String input = new String(System.in.readAllBytes(), StandardCharsets.UTF_8);
        String[] cases = input.split("\u0000\n", -1);
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        for (int i = 0; i < cases.length; i++) {
            String[] f = cases[i].split("\u0000\t", -1);
            Map<String, String> params = new HashMap<>();
            params.put("X-Run-Id", f[2]);
            params.put("id", f[3]);
            Map<String, Object> context = new HashMap<>();
            context.put("requestId", "c0ffee00-0000-4000-8000-000000000001");
            context.put("requestTimeEpoch", 1764979200123L);
            context.put("domainName", "abc123.execute-api.eu-west-1.amazonaws.com");
            context.put("stage", "storage-first");
            Map<String, String> stageVariables = new HashMap<>();
            stageVariables.put("tableName", "asyncbench-storage-first-requests");
            stageVariables.put("scheme", "https");
            VelocityContext velocity = new VelocityContext();
            velocity.put("input", new Input(f[1], params));
            velocity.put("util", new Util());
            velocity.put("context", context);
            velocity.put("stageVariables", stageVariables);
            StringWriter writer = new StringWriter();
            try {
                engine.evaluate(velocity, writer, "case" + i, f[0]);
                out.print(writer.toString());
            } catch (Throwable error) {
                out.print("ERROR " + error.getClass().getName());
            }
            if (i + 1 < cases.length) out.print("\u0000\n");
        }
    }
}
