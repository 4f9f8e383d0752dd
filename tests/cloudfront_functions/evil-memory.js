function handler(event) { var a = []; for (;;) a.push('x'.repeat(1000) + a.length); }
