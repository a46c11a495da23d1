// Renders templates through Apache Velocity 1.7 itself (Debian's `velocity` package), for the
// renderer conformance suite. Run by scripts/regenerate_velocity_cases.py; not needed by CI.
//
// Input (stdin): templates separated by a line "\u0000"; output (stdout): for each, either
// "OK\n<output>" or "ERROR\n<exception class>: <message>", separated the same way.
import java.io.*;
import java.nio.charset.StandardCharsets;
import org.apache.velocity.VelocityContext;
import org.apache.velocity.app.VelocityEngine;

public class RenderWithVelocity {
    public static void main(String[] args) throws Exception {
        VelocityEngine engine = new VelocityEngine();
        engine.setProperty("runtime.log.logsystem.class", "org.apache.velocity.runtime.log.NullLogChute");
        engine.init();
        String input = new String(System.in.readAllBytes(), StandardCharsets.UTF_8);
        String[] templates = input.split("\u0000\n", -1);
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        for (int i = 0; i < templates.length; i++) {
            StringWriter writer = new StringWriter();
            String result;
            try {
                engine.evaluate(new VelocityContext(), writer, "case" + i, templates[i]);
                result = "OK\n" + writer.toString();
            } catch (Throwable error) {
                result = "ERROR\n" + error.getClass().getName() + ": " + error.getMessage();
            }
            out.print(result);
            if (i + 1 < templates.length) out.print("\u0000\n");
        }
    }
}
