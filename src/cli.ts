console.log("vhost-console");
